package main

import (
	"math/rand/v2"
)

// pattern is one of the seeds' reconciliation shapes: its two tables, the
// match_sql that expresses it (every output row is one match, carrying
// invoice_id and payment_id), and the generator of its data.
type pattern struct {
	name string
	note string
	// invoices and payments are the column lists of the two tables; the
	// first column is the primary key.
	invoices, payments string
	sql                string
	// generate produces the data of rows invoices. It calls inv and pay
	// (either may be a discarding writer) in an order fixed by the seed.
	generate func(rng *rand.Rand, rows int64, inv, pay *rowWriter)
}

// The generators' knobs: most rows settle, a few differ by exactly the
// tolerance (still a match: tolerance_match is inclusive), and a few miss
// it, lack a part or are not paid at all, so that every pattern has
// unmatched rows on both sides.
const (
	tolerance = 1 // cents: match_sql uses tolerance_match(..., 0.01)
	minCents  = 10_00
	maxCents  = 5_000_00
)

var patterns = []*pattern{
	{
		name: "one_to_one",
		note: "one payment per invoice, amounts within 0.01; of duplicate payments the closest, earliest one matches",
		invoices: "invoice_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, issued_on DATE NOT NULL, " +
			"amount NUMERIC(12,2) NOT NULL, currency TEXT NOT NULL",
		payments: "payment_id BIGINT NOT NULL, invoice_ref BIGINT, paid_at TIMESTAMPTZ NOT NULL, " +
			"amount NUMERIC(12,2) NOT NULL, payer TEXT NOT NULL",
		sql: `SELECT invoice_id, payment_id, invoice_amount, paid_amount FROM (
  SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount,
         row_number() OVER (PARTITION BY i.invoice_id ORDER BY abs(i.amount - p.amount), p.paid_at, p.payment_id) AS pick
  FROM left_src i
  JOIN right_src p ON p.invoice_ref = i.invoice_id AND tolerance_match(i.amount, p.amount, 0.01)
) candidates
WHERE pick = 1`,
		generate: genOneToOne,
	},
	{
		name: "split",
		note: "1:N, one invoice paid by 2-4 payments whose sum is within 0.01 of it",
		invoices: "invoice_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, issued_on DATE NOT NULL, " +
			"amount NUMERIC(12,2) NOT NULL, currency TEXT NOT NULL",
		payments: "payment_id BIGINT NOT NULL, invoice_ref BIGINT, paid_at TIMESTAMPTZ NOT NULL, " +
			"amount NUMERIC(12,2) NOT NULL, payer TEXT NOT NULL",
		sql: `WITH paid AS (
  SELECT invoice_ref, sum(amount) AS total, count(*) AS parts
  FROM right_src WHERE invoice_ref IS NOT NULL GROUP BY invoice_ref
)
SELECT i.invoice_id, p.payment_id, i.amount AS invoice_amount, p.amount AS paid_amount, t.parts
FROM left_src i
JOIN paid t ON t.invoice_ref = i.invoice_id AND t.parts > 1 AND tolerance_match(i.amount, t.total, 0.01)
JOIN right_src p ON p.invoice_ref = i.invoice_id`,
		generate: genSplit,
	},
	{
		name: "batch",
		note: "M:1, one payment covering a batch of 2-5 invoices, within 0.01 of their sum; of duplicate payments the earliest matches",
		invoices: "invoice_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, issued_on DATE NOT NULL, " +
			"amount NUMERIC(12,2) NOT NULL, batch_ref BIGINT",
		payments: "payment_id BIGINT NOT NULL, batch_ref BIGINT, paid_at TIMESTAMPTZ NOT NULL, " +
			"amount NUMERIC(12,2) NOT NULL, payer TEXT NOT NULL",
		sql: `WITH billed AS (
  SELECT batch_ref, sum(amount) AS total, count(*) AS invoices
  FROM left_src WHERE batch_ref IS NOT NULL GROUP BY batch_ref
), covering AS (
  SELECT p.payment_id, p.batch_ref, p.amount, b.invoices,
         row_number() OVER (PARTITION BY p.batch_ref ORDER BY p.paid_at, p.payment_id) AS pick
  FROM right_src p
  JOIN billed b ON b.batch_ref = p.batch_ref AND b.invoices > 1 AND tolerance_match(p.amount, b.total, 0.01)
)
SELECT i.invoice_id, c.payment_id, i.amount AS invoice_amount, c.amount AS paid_amount, c.invoices AS batch_size
FROM covering c
JOIN left_src i ON i.batch_ref = c.batch_ref
WHERE c.pick = 1`,
		generate: genBatch,
	},
	{
		name: "cross",
		note: "M:N, a customer's statement of 2-4 invoices settled by 2-4 payments, totals within 0.01; every invoice-payment pair of a settled statement is a match",
		invoices: "invoice_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, statement_no INTEGER NOT NULL, " +
			"issued_on DATE NOT NULL, amount NUMERIC(12,2) NOT NULL",
		payments: "payment_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, statement_no INTEGER NOT NULL, " +
			"paid_at TIMESTAMPTZ NOT NULL, amount NUMERIC(12,2) NOT NULL, payer TEXT NOT NULL",
		sql: `WITH billed AS (
  SELECT customer_id, statement_no, sum(amount) AS total FROM left_src GROUP BY customer_id, statement_no
), paid AS (
  SELECT customer_id, statement_no, sum(amount) AS total FROM right_src GROUP BY customer_id, statement_no
), settled AS (
  SELECT b.customer_id, b.statement_no
  FROM billed b
  JOIN paid p ON p.customer_id = b.customer_id AND p.statement_no = b.statement_no
  WHERE tolerance_match(b.total, p.total, 0.01)
)
SELECT i.invoice_id, p.payment_id, s.customer_id, s.statement_no, i.amount AS invoice_amount, p.amount AS paid_amount
FROM settled s
JOIN left_src i ON i.customer_id = s.customer_id AND i.statement_no = s.statement_no
JOIN right_src p ON p.customer_id = s.customer_id AND p.statement_no = s.statement_no`,
		generate: genCross,
	},
}

func patternByName(name string) *pattern {
	for _, p := range patterns {
		if p.name == name {
			return p
		}
	}
	return nil
}

// amount is a random invoice amount in cents.
func amount(rng *rand.Rand) int64 { return minCents + rng.Int64N(maxCents-minCents) }

// split cuts total into k > 0 positive parts of roughly equal size.
func split(rng *rand.Rand, total int64, k int) []int64 {
	parts := make([]int64, k)
	base := total / int64(k)
	rest := total
	for j := 0; j < k-1; j++ {
		parts[j] = base - base/4 + rng.Int64N(base/2+1)
		rest -= parts[j]
	}
	parts[k-1] = rest
	return parts
}

// off is how far a settlement is from its bill: mostly exact, sometimes
// exactly the tolerance (a match), sometimes beyond it (no match). miss
// reports the cases that must not match.
func off(rng *rand.Rand) (delta int64, miss bool) {
	switch r := rng.IntN(100); {
	case r < 6:
		return tolerance, false
	case r < 9:
		return -tolerance, false
	case r < 12:
		return tolerance + 1 + rng.Int64N(500), true
	default:
		return 0, false
	}
}

var currencies = []string{"EUR", "USD", "GBP"}

// genOneToOne: each invoice gets one payment (exact, off by the tolerance,
// or off by more), none (unpaid), or two (a duplicate); stray payments
// carry no invoice reference.
func genOneToOne(rng *rand.Rand, rows int64, inv, pay *rowWriter) {
	var pid int64
	payment := func(ref, day, cents int64) {
		pid++
		pay.Int(pid).IntOrNull(ref, ref > 0).Time(day, rng.Int64N(86400)).Money(cents).Text(payer(pid)).End()
	}
	for id := int64(1); id <= rows; id++ {
		cents := amount(rng)
		day := id % 365
		inv.Int(id).Int(1 + id%50_000).Date(day).Money(cents).Text(currencies[id%3]).End()
		switch r := rng.IntN(100); {
		case r < 5: // unpaid
		case r < 7: // paid twice: the second one is left over
			payment(id, day+1, cents)
			payment(id, day+3, cents)
		default:
			d, _ := off(rng)
			payment(id, day+1+rng.Int64N(30), cents+d)
		}
		if rng.IntN(100) < 3 { // a payment nobody can place
			payment(0, day, amount(rng))
		}
	}
}

// genSplit: each invoice is paid in 2-4 parts; some parts are missing or
// the parts miss the total, which leaves the invoice and its parts
// unmatched.
func genSplit(rng *rand.Rand, rows int64, inv, pay *rowWriter) {
	var pid int64
	for id := int64(1); id <= rows; id++ {
		cents := amount(rng)
		day := id % 365
		inv.Int(id).Int(1 + id%50_000).Date(day).Money(cents).Text(currencies[id%3]).End()
		if rng.IntN(100) < 4 { // unpaid
			continue
		}
		parts := split(rng, cents, 2+rng.IntN(3))
		d, _ := off(rng)
		parts[0] += d
		drop := -1
		if rng.IntN(100) < 4 {
			drop = rng.IntN(len(parts)) // one part never arrived
		}
		for j, c := range parts {
			if j == drop {
				continue
			}
			pid++
			pay.Int(pid).Int(id).Time(day+1+int64(j), rng.Int64N(86400)).Money(c).Text(payer(pid)).End()
		}
	}
}

// genBatch: invoices come in batches of 2-5 that one payment covers; some
// batches are unpaid, some payments miss the total, a few are duplicated,
// and a few invoices belong to no batch.
func genBatch(rng *rand.Rand, rows int64, inv, pay *rowWriter) {
	var pid, batch int64
	for id := int64(1); id <= rows; {
		batch++
		n := 2 + rng.IntN(4)
		customer := 1 + batch%50_000
		day := batch % 365
		var total int64
		for j := 0; j < n && id <= rows; j++ {
			cents := amount(rng)
			total += cents
			ref, ok := batch, rng.IntN(100) >= 1 // 1%: the batch reference is missing
			inv.Int(id).Int(customer).Date(day).Money(cents).IntOrNull(ref, ok).End()
			id++
		}
		if rng.IntN(100) < 4 { // unpaid batch
			continue
		}
		d, _ := off(rng)
		copies := 1
		if rng.IntN(100) < 2 {
			copies = 2 // paid twice: the later payment is left over
		}
		for c := 0; c < copies; c++ {
			pid++
			pay.Int(pid).Int(batch).Time(day+1+int64(c), rng.Int64N(86400)).Money(total + d).Text(payer(pid)).End()
		}
	}
}

// genCross: each customer statement lists 2-4 invoices and is settled by
// 2-4 payments that split its total differently; some statements are
// settled short or over, or are missing a payment.
func genCross(rng *rand.Rand, rows int64, inv, pay *rowWriter) {
	var pid, stmt int64
	for id := int64(1); id <= rows; {
		stmt++
		customer, no := 1+stmt/6, stmt%6+1
		day := stmt % 365
		m, n := 2+rng.IntN(3), 2+rng.IntN(3)
		var total int64
		for j := 0; j < m && id <= rows; j++ {
			cents := amount(rng)
			total += cents
			inv.Int(id).Int(customer).Int(no).Date(day + int64(j)).Money(cents).End()
			id++
		}
		if rng.IntN(100) < 3 { // unpaid statement
			continue
		}
		parts := split(rng, total, n)
		d, _ := off(rng)
		parts[n-1] += d
		drop := -1
		if rng.IntN(100) < 3 {
			drop = rng.IntN(n)
		}
		for j, c := range parts {
			if j == drop {
				continue
			}
			pid++
			pay.Int(pid).Int(customer).Int(no).Time(day+5+int64(j), rng.Int64N(86400)).Money(c).Text(payer(pid)).End()
		}
	}
}

// payer is a plausible payer name, varying with the payment.
func payer(pid int64) string { return payers[pid%int64(len(payers))] }

var payers = []string{"ACME GmbH", "Globex Corp", "Initech", "Umbrella plc", "Stark Industries", "Wayne Enterprises", "Hooli", "Vandelay Import/Export"}
