package terraform

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/labplatform/platform/contracts/names"
)

// iamScopes says, per IAM member resource type, what it grants on.
var iamScopes = map[string]struct{ kind, attr string }{
	"google_project_iam_member":               {kind: "project", attr: "project"},
	"google_storage_bucket_iam_member":        {kind: "bucket", attr: "bucket"},
	"google_bigquery_dataset_iam_member":      {kind: "dataset", attr: "dataset_id"},
	"google_pubsub_topic_iam_member":          {kind: "topic", attr: "topic"},
	"google_pubsub_subscription_iam_member":   {kind: "subscription", attr: "subscription"},
	"google_secret_manager_secret_iam_member": {kind: "secret", attr: "secret_id"},
	"google_cloud_run_v2_job_iam_member":      {kind: "job", attr: "name"},
	"google_cloud_run_v2_service_iam_member":  {kind: "service", attr: "name"},
}

// grants evaluates every IAM member resource of the deployment into
// "member role on kind:name" lines, sorted.
func (d deployment) grants(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, addr := range sortedKeys(d.m.resources) {
		typ, _, _ := strings.Cut(addr, ".")
		if !strings.Contains(typ, "_iam_") || typ == "google_project_iam_custom_role" {
			continue
		}
		scope, ok := iamScopes[typ]
		if !ok {
			t.Errorf("%s: use one of the additive *_iam_member resources %v (bindings and policies take over what others granted)", addr, sortedKeys(iamScopes))
			continue
		}
		b := d.m.resources[addr]
		ctxs := []*hcl.EvalContext{d.ctx}
		if a, ok := b.Body.Attributes["for_each"]; ok {
			ctxs = nil
			for _, it := range forEach(t, a.Expr, d.ctx) {
				ctxs = append(ctxs, withEach(d.ctx, cty.StringVal(it.key), it.value))
			}
		}
		for _, c := range ctxs {
			on := str(t, attr(t, b.Body, scope.attr).Expr, c)
			on = on[strings.LastIndex(on, "/")+1:] // ids end in the name
			out = append(out, fmt.Sprintf("%s %s on %s:%s",
				str(t, attr(t, b.Body, "member").Expr, c), str(t, attr(t, b.Body, "role").Expr, c), scope.kind, on))
		}
	}
	slices.Sort(out)
	return out
}

// TestLeastPrivilege lists every grant of the deployment: each service
// account gets what its code does, on the narrowest scope, and nothing else
// (a grant added or removed in infra/ must be added or removed here).
func TestLeastPrivilege(t *testing.T) {
	for _, d := range deployments(t) {
		t.Run(d.tfvars, func(t *testing.T) {
			sa := func(id string) string { return "serviceAccount:" + id + "@" + d.project + ".iam.gserviceaccount.com" }
			custom := func(role string) string { return "projects/" + d.project + "/roles/" + role }
			bucket := func(name string) string { return "bucket:" + name }
			var (
				ingest      = sa("lab-ingest")
				process     = sa("lab-process")
				orchestrate = sa("lab-orchestrate")
				mobileAPI   = sa("lab-mobile-api")
				scheduler   = sa("lab-scheduler")
				gcsAgent    = "serviceAccount:service-" + stubProject + "@gs-project-accounts.iam.gserviceaccount.com"
				pubsubAgent = "serviceAccount:service-" + stubProject + "@gcp-sa-pubsub.iam.gserviceaccount.com"
				raw         = names.RawBucket(d.prefix)
				curated     = names.CuratedBucket(d.prefix)
				quarantine  = names.QuarantineBucket(d.prefix)
				models      = names.ModelsBucket(d.prefix)
				project     = "project:" + d.project
				dataset     = "dataset:" + names.Dataset
			)
			want := []string{
				// ingest writes raw only: create, and read back an object after a 412.
				ingest + " roles/storage.objectCreator on " + bucket(raw),
				ingest + " " + custom("labObjectGetter") + " on " + bucket(raw),
				// process reads raw, writes (and rewrites) curated and quarantine,
				// uses Firestore, pulls process-raw.
				process + " roles/storage.objectViewer on " + bucket(raw),
				process + " " + custom("labObjectWriter") + " on " + bucket(curated),
				process + " " + custom("labObjectWriter") + " on " + bucket(quarantine),
				process + " roles/datastore.user on " + project,
				process + " roles/pubsub.subscriber on subscription:" + names.SubscriptionProcessRaw,
				// and reads it for /readyz.
				process + " roles/pubsub.viewer on subscription:" + names.SubscriptionProcessRaw,
				// orchestrate runs BigQuery jobs on lab, keeps state and reads lineage
				// in Firestore, and runs the lifecycle DAG over every bucket.
				orchestrate + " roles/bigquery.jobUser on " + project,
				orchestrate + " roles/bigquery.dataEditor on " + dataset,
				orchestrate + " roles/datastore.user on " + project,
				orchestrate + " " + custom("labObjectDeleter") + " on " + bucket(raw),
				orchestrate + " " + custom("labObjectWriter") + " on " + bucket(curated),
				// mobile-api reads Firestore, BigQuery lab, the models, its secrets.
				mobileAPI + " roles/datastore.viewer on " + project,
				mobileAPI + " roles/bigquery.jobUser on " + project,
				mobileAPI + " roles/bigquery.dataViewer on " + dataset,
				mobileAPI + " roles/storage.objectViewer on " + bucket(models),
				mobileAPI + " roles/secretmanager.secretAccessor on secret:mobile-api-page-token-secret",
				mobileAPI + " roles/secretmanager.secretAccessor on secret:mobile-api-audit-key",
				// Cloud Scheduler starts the orchestrate job.
				scheduler + " roles/run.invoker on job:orchestrate",
				// Service agents: GCS notifications; Pub/Sub dead lettering.
				gcsAgent + " roles/pubsub.publisher on topic:" + names.TopicRawObjects,
				pubsubAgent + " roles/pubsub.publisher on topic:" + names.TopicRawObjectsDLQ,
				pubsubAgent + " roles/pubsub.subscriber on subscription:" + names.SubscriptionProcessRaw,
				// mobile-api authenticates its callers itself (JWT).
				"allUsers roles/run.invoker on service:mobile-api",
			}
			for _, b := range names.Buckets(d.prefix) {
				want = append(want,
					orchestrate+" roles/storage.objectViewer on "+bucket(b),
					orchestrate+" "+custom("labBucketLifecycle")+" on "+bucket(b))
			}
			slices.Sort(want)
			got := d.grants(t)
			for _, g := range got {
				if !slices.Contains(want, g) {
					t.Errorf("unexpected grant: %s", g)
				}
			}
			for _, w := range want {
				if !slices.Contains(got, w) {
					t.Errorf("missing grant: %s", w)
				}
			}
		})
	}
}

// TestCustomRoles pins the permissions of the custom roles the grants use.
func TestCustomRoles(t *testing.T) {
	want := map[string][]string{
		"labObjectGetter":    {"storage.objects.get"},
		"labObjectWriter":    {"storage.objects.create", "storage.objects.delete"},
		"labObjectDeleter":   {"storage.objects.delete"},
		"labBucketLifecycle": {"storage.buckets.get", "storage.buckets.update"},
	}
	d := deployments(t)[0]
	got := map[string][]string{}
	for _, n := range d.m.resourcesOf("google_project_iam_custom_role") {
		addr := "google_project_iam_custom_role." + n
		perms := strs(t, attr(t, d.m.resources[addr].Body, "permissions").Expr, d.ctx)
		slices.Sort(perms)
		got[d.get(t, addr, "role_id").AsString()] = perms
	}
	if len(got) != len(want) {
		t.Errorf("custom roles %v, want %v", sortedKeys(got), sortedKeys(want))
	}
	for role, perms := range want {
		if !slices.Equal(got[role], perms) {
			t.Errorf("custom role %s: permissions %v, want %v", role, got[role], perms)
		}
	}
}

// TestServiceAccountsRunTheServices checks that each Cloud Run service and
// job, and the scheduler's token, use their own declared service account.
func TestServiceAccountsRunTheServices(t *testing.T) {
	for _, d := range deployments(t) {
		accounts := d.byName(t, "google_service_account", "account_id")
		want := []string{"lab-ingest", "lab-mobile-api", "lab-orchestrate", "lab-process", "lab-scheduler"}
		if got := sortedKeys(accounts); !slices.Equal(got, want) {
			t.Errorf("%s: service accounts %v, want %v (one per deployable)", d.tfvars, got, want)
		}
		for _, c := range []struct {
			addr    string
			path    []string
			account string
		}{
			{addr: "google_cloud_run_v2_service.mobile_api", path: []string{"template", "service_account"}, account: "lab-mobile-api"},
			{addr: "google_cloud_run_v2_service.process", path: []string{"template", "service_account"}, account: "lab-process"},
			{addr: "google_cloud_run_v2_job.orchestrate", path: []string{"template", "template", "service_account"}, account: "lab-orchestrate"},
			{addr: "google_cloud_scheduler_job.orchestrate", path: []string{"http_target", "oauth_token", "service_account_email"}, account: "lab-scheduler"},
		} {
			body := d.m.resource(t, c.addr).Body
			for _, b := range c.path[:len(c.path)-1] {
				body = child(t, body, b).Body
			}
			expr := attr(t, body, c.path[len(c.path)-1]).Expr
			if r := onlyRef(t, expr); r.addr != accounts[c.account] {
				t.Errorf("%s: %s runs as %s, want %s", d.tfvars, c.addr, r.addr, accounts[c.account])
			}
			if got, want := str(t, expr, d.ctx), c.account+"@"+d.project+".iam.gserviceaccount.com"; got != want {
				t.Errorf("%s: %s: service account %q, want %q", d.tfvars, c.addr, got, want)
			}
		}
	}
}
