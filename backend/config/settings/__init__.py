from .base import *  # noqa: F401,F403
from .brokers import *  # noqa: F401,F403
from .celery import *  # noqa: F401,F403
from .imports import *  # noqa: F401,F403
from .security import *  # noqa: F401,F403
