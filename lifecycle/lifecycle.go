// Package lifecycle owns the storage lifecycle policy file, policies.json:
// the only copy of the platform's bucket lifecycle rules. The Go code reads
// it through package policy, and the Terraform in infra/ reads the same file
// with jsondecode(file(...)). It also embeds prices.json, the default price
// table of the cost report. Nothing else belongs in this package.
package lifecycle

import _ "embed"

// PricesJSON is prices.json as shipped with this module: the GCS price table
// the cost report uses unless given another. Parse it with cost.DefaultPrices.
//
//go:embed prices.json
var PricesJSON []byte

// PoliciesJSON is policies.json as shipped with this module. Parse it with
// policy.Default or policy.Parse rather than reading it directly.
//
//go:embed policies.json
var PoliciesJSON []byte
