"""Federated personalization (FedPer with Flower's deployment engine): see `recipe.federate`.

Importing this package registers the "federated" defense. The ServerApp/ClientApp modules import
flwr and are loaded by Flower's own processes, not here.
"""

from privaudit.defenses.federated.config import FederatedConfig
from privaudit.defenses.federated.deployment import FlowerDeployment, FlowerProcessError
from privaudit.defenses.federated.partition import ClientPartition, partition_corpus
from privaudit.defenses.federated.recipe import ClientOutcome, FederatedDefense, FederatedOutcome, federate, load_outcome

__all__ = [
    "ClientOutcome", "ClientPartition", "FederatedConfig", "FederatedDefense", "FederatedOutcome",
    "FlowerDeployment", "FlowerProcessError", "federate", "load_outcome", "partition_corpus",
]
