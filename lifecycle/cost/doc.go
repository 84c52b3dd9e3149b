// Package cost owns the storage cost report of `lifecycle cost`: the
// inventory of the policy's buckets (bytes and object counts per bucket x
// storage class x age band), the price table (lifecycle/prices.json, or
// another file), the current monthly at-rest estimate, a month-by-month
// projection with and without the lifecycle policies (including the
// operation, retrieval and early-deletion charges the policies cause), its
// text, JSON and SVG renderings, and the day-over-day growth check on
// snapshots kept in Firestore (collection lifecycle_snapshots).
//
// What the projection assumes is listed in Report.Assumptions and printed
// with the report.
//
// Errors: TakeInventory returns listing errors wrapped with the bucket;
// ParsePrices and Prices.Validate return every problem of a price table
// joined; LoadSnapshot wraps ErrNoSnapshot when the day has no snapshot.
package cost
