"""Training methods, one per file, registered by name in `METHODS`."""
# ruff: noqa: I001  (one import line per method, so additions never conflict)

from earlyreadout.methods import erm  # noqa: F401
from earlyreadout.methods import groupdro  # noqa: F401
from earlyreadout.methods import jtt  # noqa: F401
from earlyreadout.methods import kd  # noqa: F401
from earlyreadout.methods import dedier  # noqa: F401
from earlyreadout.methods import jtt_kd  # noqa: F401
from earlyreadout.methods import sieve  # noqa: F401
from earlyreadout.methods import readout_reweight  # noqa: F401
from earlyreadout.methods import dfr  # noqa: F401
from earlyreadout.methods import readout_dfr  # noqa: F401
from earlyreadout.methods import afr  # noqa: F401
from earlyreadout.methods import self_retrain  # noqa: F401
from earlyreadout.methods import irm  # noqa: F401
from earlyreadout.methods import mmd  # noqa: F401
from earlyreadout.methods import coral  # noqa: F401
from earlyreadout.methods import mixup  # noqa: F401
from earlyreadout.methods import lisa  # noqa: F401
from earlyreadout.methods import lff  # noqa: F401
from earlyreadout.methods import spare  # noqa: F401
from earlyreadout.methods import eiil  # noqa: F401
from earlyreadout.methods import reweight  # noqa: F401
from earlyreadout.methods import sqrt_reweight  # noqa: F401
from earlyreadout.methods import resample  # noqa: F401
from earlyreadout.methods import cbloss  # noqa: F401
from earlyreadout.methods import focal  # noqa: F401
from earlyreadout.methods import ldam  # noqa: F401
from earlyreadout.methods import bsoftmax  # noqa: F401
from earlyreadout.methods import cvardro  # noqa: F401
from earlyreadout.methods import crt  # noqa: F401
from earlyreadout.methods import reweight_crt  # noqa: F401
from earlyreadout.methods import vanilla_crt  # noqa: F401
from earlyreadout.methods.base import METHODS, Context, Method, refuse_lacking_labels, register

__all__ = ["METHODS", "Context", "Method", "refuse_lacking_labels", "register"]
