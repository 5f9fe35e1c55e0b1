"""Test doubles for Google Cloud served through the real client libraries: in-process gRPC fakes of
Cloud Run Admin (WorkerPools) and Cloud Monitoring, a fault-injecting proxy for the Pub/Sub
emulator, and the emulator's launcher."""
