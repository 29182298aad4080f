"""Routing rules: which workflows run, and where a series is forwarded, once it has arrived.

The rules live in a YAML file (PACSFLOW_ROUTING, or the default that ships here). This
package only reads, validates and evaluates them, without Airflow, the database or the
network, so that ``pacsflow up`` can check the file at start and the dispatcher and the
``process_series`` DAG can apply it; running the actions is the callers' job.
"""

from pacsflow.routing.loading import DEFAULT_RULES, RoutingError, load_rules
from pacsflow.routing.matching import SeriesFacts, matches, matching_actions
from pacsflow.routing.rules import (
    Action,
    Forward,
    Match,
    Rule,
    RuleSet,
    Trigger,
    ValueMatcher,
)

__all__ = [
    "DEFAULT_RULES",
    "Action",
    "Forward",
    "Match",
    "Rule",
    "RoutingError",
    "RuleSet",
    "SeriesFacts",
    "Trigger",
    "ValueMatcher",
    "load_rules",
    "matches",
    "matching_actions",
]
