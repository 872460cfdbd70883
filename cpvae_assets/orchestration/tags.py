"""Run tags the platform reads back: the landing content a run ingests or rejected, and why."""

# the landing content hash a sensor-requested ingestion run was started for
HASH_TAG = "cpvae/landing_sha256"
# set by raw_profiles on a run whose landing content was refused; the sensor never requests it again
REJECTED_TAG = "cpvae/rejected"
REASON_TAG = "cpvae/rejection"
# the landing change a run belongs to (the landing sensor's run key): the refresh plan follows it
REFRESH_TAG = "cpvae/refresh"
# who launched a run (cpvae demo, the CLI)
LAUNCHED_BY_TAG = "cpvae/launched_by"
# on every job that trains a model: the local instance runs one such run at a time (a run tag limit in
# deploy/dagster.local.yaml), counted from the moment it is dequeued
TRAINS_TAG = "cpvae/trains"
