"""Attack families (installed as `privaudit.attacks`). Each module registers its attacks by name."""

from privaudit.attacks.base import (  # noqa: F401
    ATTACKS,
    Attack,
    AttackResult,
    RunContext,
    available_attacks,
    get_attack,
    register_attack,
)
