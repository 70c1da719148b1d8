"""Federated personalization (FedPer with Flower's deployment engine): see `recipe.federate`.

Importing this package registers the "federated" and "federated_dp" defenses. The ServerApp/ClientApp modules import
flwr and are loaded by Flower's own processes, not here.
"""

from privaudit.defenses.federated.config import FederatedConfig
from privaudit.defenses.federated.deployment import FlowerDeployment, FlowerProcessError
from privaudit.defenses.federated.partition import ClientPartition, partition_corpus
from privaudit.defenses.federated.recipe import (
    ClientOutcome, FederatedDefense, FederatedDPConfig, FederatedDPDefense, FederatedOutcome, dp_epsilon, federate,
    load_outcome,
)
from privaudit.defenses.federated.remote import RemoteFederation

__all__ = [
    "ClientOutcome", "ClientPartition", "FederatedConfig", "FederatedDPConfig", "FederatedDPDefense", "FederatedDefense",
    "FederatedOutcome", "FlowerDeployment", "FlowerProcessError", "RemoteFederation", "dp_epsilon", "federate",
    "load_outcome", "partition_corpus",
]
