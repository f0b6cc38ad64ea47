"""General utilities: the environment check and system information (chapter 01), and timing helpers."""

from tinytorch.utils.environment import check_environment, system_info
from tinytorch.utils.timing import best_time, median_time, median_times
