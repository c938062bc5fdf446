async def test_live_and_ready(client):
    assert (await client.get("/health/live")).status == 200
    response = await client.get("/health/ready")
    assert response.status == 200, await response.text()
    assert (await response.json())["checks"] == {"postgres": "ok", "redis": "ok"}
