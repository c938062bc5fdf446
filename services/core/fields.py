"""Field types core's HTTP schemas share."""

from typing import Annotated

from chassis.http import JSON_INTEGER
from contracts import Amount

# An amount in minor units as a client sends it: 3 or 3.0, never "3" or true.
JsonAmount = Annotated[Amount, JSON_INTEGER]
