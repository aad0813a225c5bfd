from .base import Router
from .mf import MFRouter
from .random import RandomRouter
from .sw_ranking import SWRankingRouter

__all__ = ["Router", "MFRouter", "RandomRouter", "SWRankingRouter"]
