"""Load shapes, chosen on the command line (`--load-shape step|spike|soak|capacity`): a step load
to find the knee, a spike, a soak, each ending by itself after `--shape-seconds`; and capacity
steps (`capacity.py`), measured one by one until one breaks a gate."""

from __future__ import annotations

from typing import Any

from capacity import Steps
from locust import LoadTestShape, events


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument(
        "--load-shape",
        choices=["step", "spike", "soak", "capacity"],  # the keys of SHAPES
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


class OptionedShape(LoadTestShape):
    """A shape read from the command line's options; `SelectedShape` runs the one named."""

    abstract = True

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        if options is None:
            return None
        return self.shape(options, self.get_run_time())

    def shape(self, options: Any, elapsed: float) -> tuple[int, float] | None:
        """The users and spawn rate `elapsed` seconds into the run, or None to stop."""
        raise NotImplementedError


class StepShape(OptionedShape):
    """`--step-users` more every `--step-seconds`, up to `--max-users`: to find the knee."""

    def shape(self, options: Any, elapsed: float) -> tuple[int, float] | None:
        if elapsed >= options.shape_seconds:
            return None
        step, width = options.step_users, options.step_seconds
        return min(options.max_users, step * (int(elapsed // width) + 1)), max(1.0, step / 2)


class SpikeShape(OptionedShape):
    """`--step-users`, then `--max-users` at once for the middle third, then back."""

    def shape(self, options: Any, elapsed: float) -> tuple[int, float] | None:
        if elapsed >= options.shape_seconds:
            return None
        third = options.shape_seconds / 3
        users = options.max_users if third <= elapsed < 2 * third else options.step_users
        return users, float(options.max_users)


class SoakShape(OptionedShape):
    """`--max-users`, reached once, held for the whole run."""

    def shape(self, options: Any, elapsed: float) -> tuple[int, float] | None:
        if elapsed >= options.shape_seconds:
            return None
        return options.max_users, max(1.0, options.max_users / 10)


class CapacityShape(OptionedShape):
    """Steps measured and judged one by one, until one breaks a gate (`capacity.py`)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = Steps()

    def shape(self, options: Any, elapsed: float) -> tuple[int, float] | None:
        return self.steps.tick(self.runner, elapsed)


SHAPES: dict[str, type[OptionedShape]] = {
    "step": StepShape,
    "spike": SpikeShape,
    "soak": SoakShape,
    "capacity": CapacityShape,
}


class SelectedShape(LoadTestShape):
    """The shape `--load-shape` names (Locust runs the one shape class a locustfile has)."""

    def __init__(self) -> None:
        super().__init__()
        self.chosen: OptionedShape | None = None
        self.elapsed = 0.0

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options if self.runner else None
        if options is None:
            return None
        elapsed = self.get_run_time()
        fresh = elapsed < self.elapsed  # a new run (the web UI's): a new shape, a new state
        self.elapsed = elapsed
        if fresh or not isinstance(self.chosen, SHAPES[options.load_shape]):
            self.chosen = SHAPES[options.load_shape]()
        self.chosen.runner, self.chosen.start_time = self.runner, self.start_time
        return self.chosen.tick()
