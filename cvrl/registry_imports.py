"""Imports every module that registers experiments, tasks and backbones.

Importing this module makes `exp_factory`, `task_factory` and Model Garden's
backbone factory know all of CVRL's names.
"""

# pylint: disable=unused-import
from cvrl.configs import pretrain as _pretrain_configs  # noqa: F401
from cvrl.modeling import r3d as _r3d  # noqa: F401
from cvrl.tasks import pretrain as _pretrain_task  # noqa: F401
from cvrl.configs import classification as _classification_configs  # noqa: F401
from cvrl.tasks import classification as _classification_task  # noqa: F401
from cvrl.configs import demo as _demo_configs  # noqa: F401
from cvrl.configs import small as _small_configs  # noqa: F401
from cvrl.configs import detection as _detection_configs  # noqa: F401
from cvrl.tasks import detection as _detection_task  # noqa: F401
