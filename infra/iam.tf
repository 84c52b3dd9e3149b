# One service account per deployable, each granted only what its code does,
# on the bucket, dataset, subscription or secret it touches; project-wide
# only where the service has no finer scope (BigQuery jobs, Firestore).

resource "google_service_account" "ingest" {
  account_id   = "lab-ingest"
  display_name = "ingest: ships robot exports to the raw bucket (runs on the ingest host)"
}

resource "google_service_account" "process" {
  account_id   = "lab-process"
  display_name = "process workers: raw CSV to curated Parquet, quarantine, lineage, summaries"
}

resource "google_service_account" "orchestrate" {
  account_id   = "lab-orchestrate"
  display_name = "orchestrate scheduler: BigQuery loads, quality checks, lifecycle"
}

resource "google_service_account" "mobile_api" {
  account_id   = "lab-mobile-api"
  display_name = "mobile-api: the patient app's and the model's HTTP API"
}

resource "google_service_account" "scheduler" {
  account_id   = "lab-scheduler"
  display_name = "Cloud Scheduler: starts the orchestrate job"
}

# Custom roles for what no predefined role grants alone.
resource "google_project_iam_custom_role" "object_getter" {
  role_id     = "labObjectGetter"
  title       = "Lab object getter"
  description = "Read one object's metadata and content, without listing."
  permissions = ["storage.objects.get"]
}

resource "google_project_iam_custom_role" "object_writer" {
  role_id     = "labObjectWriter"
  title       = "Lab object writer"
  description = "Create objects and overwrite them (an overwrite needs delete), without reading or listing."
  permissions = ["storage.objects.create", "storage.objects.delete"]
}

resource "google_project_iam_custom_role" "object_deleter" {
  role_id     = "labObjectDeleter"
  title       = "Lab object deleter"
  description = "Delete objects: the lifecycle enforcer's data-aware deletes."
  permissions = ["storage.objects.delete"]
}

resource "google_project_iam_custom_role" "bucket_lifecycle" {
  role_id     = "labBucketLifecycle"
  title       = "Lab bucket lifecycle"
  description = "Read a bucket's configuration and write its lifecycle rules (lifecycle apply)."
  permissions = ["storage.buckets.get", "storage.buckets.update"]
}

# ingest writes the raw bucket only. Uploads use ifGenerationMatch=0 (create,
# never replace); after a 412 it reads the existing object's size and CRC32C,
# hence get on raw.
resource "google_storage_bucket_iam_member" "ingest_creates_raw" {
  bucket = google_storage_bucket.this["raw"].name
  role   = "roles/storage.objectCreator"
  member = google_service_account.ingest.member
}

resource "google_storage_bucket_iam_member" "ingest_gets_raw" {
  bucket = google_storage_bucket.this["raw"].name
  role   = google_project_iam_custom_role.object_getter.id
  member = google_service_account.ingest.member
}

# process reads raw, writes curated and quarantine (the same names again when
# a message is redelivered), keeps lineage and summaries in Firestore and
# pulls process-raw.
resource "google_storage_bucket_iam_member" "process_reads_raw" {
  bucket = google_storage_bucket.this["raw"].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.process.member
}

resource "google_storage_bucket_iam_member" "process_writes_curated" {
  bucket = google_storage_bucket.this["curated"].name
  role   = google_project_iam_custom_role.object_writer.id
  member = google_service_account.process.member
}

resource "google_storage_bucket_iam_member" "process_writes_quarantine" {
  bucket = google_storage_bucket.this["quarantine"].name
  role   = google_project_iam_custom_role.object_writer.id
  member = google_service_account.process.member
}

resource "google_project_iam_member" "process_uses_firestore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = google_service_account.process.member
}

resource "google_pubsub_subscription_iam_member" "process_pulls_process_raw" {
  subscription = google_pubsub_subscription.process_raw.id
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.process.member
}

# The worker's /readyz reads the subscription (pubsub.subscriptions.get),
# which the subscriber role lacks.
resource "google_pubsub_subscription_iam_member" "process_views_process_raw" {
  subscription = google_pubsub_subscription.process_raw.id
  role         = "roles/pubsub.viewer"
  member       = google_service_account.process.member
}

# orchestrate runs BigQuery jobs (loads from curated, the day's replace,
# assertions, quality metrics, views), keeps its state, reads lineage and
# records loads in Firestore, and runs the lifecycle DAG: reads every
# bucket's objects (cost report) and configuration (lifecycle apply, a no-op
# while Terraform applied the same policies), deletes raw objects whose data
# is loaded (the enforcer-only rule), writes the cost report to curated.
resource "google_project_iam_member" "orchestrate_runs_bigquery_jobs" {
  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.orchestrate.member
}

resource "google_bigquery_dataset_iam_member" "orchestrate_edits_lab" {
  dataset_id = google_bigquery_dataset.lab.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = google_service_account.orchestrate.member
}

resource "google_project_iam_member" "orchestrate_uses_firestore" {
  project = var.project
  role    = "roles/datastore.user"
  member  = google_service_account.orchestrate.member
}

resource "google_storage_bucket_iam_member" "orchestrate_reads_buckets" {
  for_each = local.buckets

  bucket = google_storage_bucket.this[each.key].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.orchestrate.member
}

resource "google_storage_bucket_iam_member" "orchestrate_applies_lifecycle" {
  for_each = local.buckets

  bucket = google_storage_bucket.this[each.key].name
  role   = google_project_iam_custom_role.bucket_lifecycle.id
  member = google_service_account.orchestrate.member
}

resource "google_storage_bucket_iam_member" "orchestrate_deletes_raw" {
  bucket = google_storage_bucket.this["raw"].name
  role   = google_project_iam_custom_role.object_deleter.id
  member = google_service_account.orchestrate.member
}

resource "google_storage_bucket_iam_member" "orchestrate_writes_curated" {
  bucket = google_storage_bucket.this["curated"].name
  role   = google_project_iam_custom_role.object_writer.id
  member = google_service_account.orchestrate.member
}

# mobile-api reads summaries, profiles and care teams in Firestore, runs
# BigQuery queries over lab (history), and loads models from the models bucket.
resource "google_project_iam_member" "mobile_api_reads_firestore" {
  project = var.project
  role    = "roles/datastore.viewer"
  member  = google_service_account.mobile_api.member
}

resource "google_project_iam_member" "mobile_api_runs_bigquery_jobs" {
  project = var.project
  role    = "roles/bigquery.jobUser"
  member  = google_service_account.mobile_api.member
}

resource "google_bigquery_dataset_iam_member" "mobile_api_reads_lab" {
  dataset_id = google_bigquery_dataset.lab.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = google_service_account.mobile_api.member
}

resource "google_storage_bucket_iam_member" "mobile_api_reads_models" {
  bucket = google_storage_bucket.this["models"].name
  role   = "roles/storage.objectViewer"
  member = google_service_account.mobile_api.member
}

resource "google_secret_manager_secret_iam_member" "mobile_api_reads_page_token_secret" {
  secret_id = google_secret_manager_secret.mobile_api_page_token.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.mobile_api.member
}

resource "google_secret_manager_secret_iam_member" "mobile_api_reads_audit_key" {
  secret_id = google_secret_manager_secret.mobile_api_audit_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.mobile_api.member
}

# Cloud Scheduler starts executions of the orchestrate job, nothing else.
resource "google_cloud_run_v2_job_iam_member" "scheduler_runs_orchestrate" {
  name     = google_cloud_run_v2_job.orchestrate.name
  location = google_cloud_run_v2_job.orchestrate.location
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

# mobile-api is a public API: every route but /healthz, /readyz, /metrics,
# /openapi.json, the web page and the FHIR CapabilityStatement checks a JWT.
resource "google_cloud_run_v2_service_iam_member" "mobile_api_public" {
  name     = google_cloud_run_v2_service.mobile_api.name
  location = google_cloud_run_v2_service.mobile_api.location
  role     = "roles/run.invoker"
  member   = "allUsers"
}
