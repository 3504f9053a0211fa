package benchdata

// UnmatchedKeys derives, from the bucket design alone (see Expected), the
// keys of the rows every correct reconciliation of n invoices leaves
// unmatched: invoice_id of the invoices, payment_id of the payments. A
// benchmark that fetches the unmatched rows by key (kallabench's
// pg-prune-floor) uses them without running the match.
func UnmatchedKeys(n int64) (invoices, payments []int64) {
	for i := range n {
		switch b := mix(i, 1) % 100; {
		case b >= 68 && b < 75:
			invoices = append(invoices, i+1)
			payments = append(payments, 2*i+1)
		case b == 79:
			// Exact and + 0.02: the second payment is left over.
			payments = append(payments, 2*i+2)
		case b >= 80:
			invoices = append(invoices, i+1)
		}
	}
	for k := range n / 10 {
		payments = append(payments, 2*n+1+k)
	}
	return invoices, payments
}
