package summary

// SetCommitLimits lowers u's limits of one commit, so that tests can make
// batches that must be committed in parts.
func SetCommitLimits(u *Updater, writes, bytes int) { u.maxWrites, u.maxBytes = writes, bytes }

// LedgerBytes is ledgerBytes, the size estimate of a ledger document.
var LedgerBytes = ledgerBytes
