package mediator

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// A CHT report is pushed again with the same doc._id after every edit that
// changes its mapped values (docs/upstreams/cht.md §4, trap 11). openIMIS
// keeps one feedback per claim and refuses a second ("Feedback exists for
// this claim", docs/upstreams/openimis.md §5), and the mediator delivers
// exactly one feedback per report (README "What happens to a feedback"): an
// edit is not delivered again, but logged and counted, so an operator sees
// it and can take it up in openIMIS.
//
// To tell an edit from a repeat, the feedback's receipt keeps a digest of
// what was received first: one fingerprint per field of the parsed feedback
// (so the key order, the key casing and the spelling of a yes/no answer do
// not matter), which names the fields an edit changed without the values.
// A fingerprint is a SHA-256 of the report id, the field and its value, cut
// to 64 bits; it is kept in the mediator's store, which holds the answers
// in the job's payload anyway, and never logged.

// digestVersion starts every feedback digest; a digest without it is
// unknown (a receipt recorded before receipts kept digests has none).
const digestVersion = "v1"

// feedbackFields returns the compared fields of a feedback, by the keys of
// the outbound mapping (README "Setting up CHT outbound push"), in the
// order the log names them.
func feedbackFields(fb mapping.Feedback) [][2]string {
	return [][2]string{
		{"claimUUID", strings.ToLower(fb.ClaimUUID)},
		{"insureeUUID", strings.ToLower(fb.InsureeUUID)},
		{"care_rendered", strconv.FormatBool(fb.CareRendered)},
		{"payment_asked", strconv.FormatBool(fb.PaymentAsked)},
		{"drug_prescribed", strconv.FormatBool(fb.DrugPrescribed)},
		{"drug_received", strconv.FormatBool(fb.DrugReceived)},
		{"assessment_rating", strconv.Itoa(fb.Rating)},
	}
}

// feedbackDigest returns the digest the receipt of fb keeps:
// "v1 claimUUID=<16 hex> insureeUUID=<16 hex> …".
func feedbackDigest(fb mapping.Feedback) string {
	var b strings.Builder
	b.WriteString(digestVersion)
	for _, f := range feedbackFields(fb) {
		h := sha256.Sum256([]byte(fb.DocID + "\x00" + f[0] + "\x00" + f[1]))
		b.WriteString(" " + f[0] + "=" + hex.EncodeToString(h[:8]))
	}
	return b.String()
}

// changedFields names the fields whose fingerprints differ between the
// digest a receipt kept and the digest of a repeat, in the order of
// current. known is false when previous is no digest this version reads:
// nothing can then be said about the repeat.
func changedFields(previous, current string) (changed []string, known bool) {
	old, ok := parseDigest(previous)
	if !ok {
		return nil, false
	}
	cur, ok := parseDigest(current)
	if !ok {
		return nil, false
	}
	was := make(map[string]string, len(old))
	for _, f := range old {
		was[f[0]] = f[1]
	}
	for _, f := range cur {
		if was[f[0]] != f[1] {
			changed = append(changed, f[0])
		}
	}
	return changed, true
}

// parseDigest splits a digest into its fields and their fingerprints, in
// order.
func parseDigest(d string) ([][2]string, bool) {
	parts := strings.Fields(d)
	if len(parts) == 0 || parts[0] != digestVersion {
		return nil, false
	}
	fields := make([][2]string, 0, len(parts)-1)
	for _, p := range parts[1:] {
		name, fp, ok := strings.Cut(p, "=")
		if !ok {
			return nil, false
		}
		fields = append(fields, [2]string{name, fp})
	}
	return fields, true
}
