"""Load shapes, chosen on the command line (`--load-shape step|spike|soak|capacity`): a step load
to find the knee, a spike, a soak, each ending by itself after `--shape-seconds`; and capacity
steps (`capacity.py`), measured one by one until one breaks a gate."""

from __future__ import annotations

from capacity import Steps
from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument(
        "--load-shape",
        choices=["step", "spike", "soak", "capacity"],
        default="step",
        include_in_web_ui=True,
        help="how the load changes over time",
    )
    parser.add_argument(
        "--step-users",
        type=int,
        default=10,
        include_in_web_ui=True,
        help="users added at each step (step), the base load (spike, soak)",
    )
    parser.add_argument(
        "--step-seconds",
        type=int,
        default=10,
        include_in_web_ui=True,
        help="how long each step lasts",
    )
    parser.add_argument(
        "--max-users",
        type=int,
        default=60,
        include_in_web_ui=True,
        help="the most users (the top step, the spike, the soak)",
    )
    parser.add_argument(
        "--shape-seconds",
        type=int,
        default=60,
        include_in_web_ui=True,
        help="how long the whole run lasts",
    )


class SelectedShape(LoadTestShape):
    """The shape `--load-shape` names."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = Steps()

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        if options is None:
            return None
        elapsed = self.get_run_time()
        if options.load_shape == "capacity":
            return self.steps.tick(self.runner, elapsed)
        if elapsed >= options.shape_seconds:
            return None
        step, top, width = options.step_users, options.max_users, options.step_seconds
        if options.load_shape == "step":
            users = min(top, step * (int(elapsed // width) + 1))
            return users, max(1.0, step / 2)
        if options.load_shape == "spike":
            third = options.shape_seconds / 3
            users = top if third <= elapsed < 2 * third else step
            return users, float(top)
        return top, max(1.0, top / 10)  # soak: ramp once, then hold
