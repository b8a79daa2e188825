package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/cht-openimis/cht-openimis-mediator/mediator"
)

// printable makes an outside string (an id, an upstream's error text) safe
// to print on a terminal: a string holding control characters (escape
// sequences, carriage returns, newlines) or invalid UTF-8 is printed quoted,
// with those escaped, so it can neither drive the terminal nor forge lines.
func printable(s string) string {
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}

// printChecks prints one line per check, with what to fix, and a summary; it
// reports whether every check passed.
func printChecks(w io.Writer, results []mediator.CheckResult) bool {
	allOK := true
	for _, r := range results {
		switch r.Status {
		case "skip":
			allOK = false
			fmt.Fprintf(w, "SKIP  %s (%s)\n", printable(r.Name), printable(r.Detail))
		case "fail":
			allOK = false
			fmt.Fprintf(w, "FAIL  %s: %s\n", printable(r.Name), printable(r.Detail))
			if r.Fix != "" {
				fmt.Fprintf(w, "      fix: %s\n", printable(r.Fix))
			}
		case "warn":
			fmt.Fprintf(w, "WARN  %s: %s\n", printable(r.Name), printable(r.Detail))
			if r.Fix != "" {
				fmt.Fprintf(w, "      note: %s\n", printable(r.Fix))
			}
		default:
			fmt.Fprintf(w, "ok    %s: %s\n", printable(r.Name), printable(r.Detail))
		}
	}
	if allOK {
		fmt.Fprintln(w, "all checks passed")
	} else {
		fmt.Fprintln(w, "some checks failed")
	}
	return allOK
}

// printSubscription prints the Claim subscriptions of this mediator.
func printSubscription(w io.Writer, r mediator.SubscriptionReport) {
	if r.Disabled {
		fmt.Fprintln(w, "disabled by an operator: the server does not create or renew it (mediator subscription renew re-enables it)")
	}
	if len(r.Subscriptions) == 0 {
		fmt.Fprintln(w, "no Claim subscription for", printable(r.Endpoint))
		return
	}
	for _, s := range r.Subscriptions {
		fmt.Fprintf(w, "id:        %s\nstatus:    %s\ncriteria:  %s\nend:       %s\nendpoint:  %s\nheader:    %s\n\n",
			printable(s.ID), printable(s.Status), printable(s.Criteria), printable(s.End),
			printable(s.Channel.Endpoint), printable(strings.Join(s.Channel.Header, ", ")))
	}
}

// printJobs prints jobs as a table.
func printJobs(w io.Writer, jobs []mediator.Job) error {
	if len(jobs) == 0 {
		_, err := fmt.Fprintln(w, "no jobs")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tATTEMPTS\tSUBJECT\tCREATED\tLAST ERROR")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, printable(j.Kind), printable(j.State), j.Attempt, j.MaxAttempts,
			printable(j.Subject), j.CreatedAt.UTC().Format(time.RFC3339), oneLine(j.LastError(), 100))
	}
	return tw.Flush()
}

// printJob prints one job: its subject, state, attempts, every error with
// its time, and its payload.
func printJob(w io.Writer, j mediator.Job) {
	fmt.Fprintf(w, "id:        %d\nkind:      %s\nstate:     %s\nsubject:   %s\nattempts:  %d of %d\ncreated:   %s\n",
		j.ID, printable(j.Kind), printable(j.State), printable(j.Subject), j.Attempt, j.MaxAttempts, j.CreatedAt.UTC().Format(time.RFC3339))
	if !j.NextTry.IsZero() {
		fmt.Fprintf(w, "next try:  %s\n", j.NextTry.UTC().Format(time.RFC3339))
	}
	if !j.FinishedAt.IsZero() {
		fmt.Fprintf(w, "finished:  %s\n", j.FinishedAt.UTC().Format(time.RFC3339))
	}
	if len(j.Errors) > 0 {
		fmt.Fprintln(w, "errors:")
		for _, e := range j.Errors {
			fmt.Fprintf(w, "  attempt %d at %s: %s\n", e.Attempt, e.At.UTC().Format(time.RFC3339), printable(e.Error))
		}
	}
	var payload any
	if json.Unmarshal(j.Payload, &payload) == nil {
		// Indented JSON escapes the C0 control characters in its strings
		// (and U+2028, U+2029), not the C1 ones: escapeJSON does.
		b, _ := json.MarshalIndent(payload, "", "  ")
		fmt.Fprintf(w, "payload:\n%s\n", escapeJSON(string(b)))
	} else if len(j.Payload) > 0 {
		fmt.Fprintf(w, "payload:   %s\n", printable(string(j.Payload)))
	}
}

// escapeJSON writes the C1 control characters (U+0080 to U+009F) of JSON
// text, and the U+FFFD that stands for invalid UTF-8, as \u escapes; in
// JSON they can only occur inside strings, where the escape means the same
// character.
func escapeJSON(s string) string {
	if !strings.ContainsFunc(s, needsEscape) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if needsEscape(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func needsEscape(r rune) bool { return r >= 0x80 && r <= 0x9f || r == unicode.ReplacementChar }

// printableLines is printable applied to each line of s: for messages of
// several lines (usage texts) that may quote an outside string.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}

// oneLine folds s onto one line of at most max bytes, escaped.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return printable(s)
}

// printSourceSubscription prints the subscriptions to a FHIR source's
// callback.
func printSourceSubscription(w io.Writer, r mediator.SourceSubscriptionReport) {
	if r.Disabled {
		fmt.Fprintf(w, "disabled by an operator: the server does not create or renew it (mediator subscription renew --source %s re-enables it)\n", printable(r.Source))
	}
	if len(r.Subscriptions) == 0 {
		fmt.Fprintln(w, "no subscription on", printable(r.Source), "for", printable(r.Endpoint))
		return
	}
	for _, s := range r.Subscriptions {
		kept := ""
		if s.ID == r.StoredID {
			kept = " (the one the mediator keeps)"
		}
		fmt.Fprintf(w, "id:        %s%s\nstatus:    %s\ncriteria:  %s\nend:       %s\nendpoint:  %s\npayload:   %s\nheader:    %s\n",
			printable(s.ID), kept, printable(s.Status), printable(s.Criteria), printable(s.End),
			printable(s.Endpoint), printable(cmp.Or(s.Payload, "(none)")), printable(cmp.Or(strings.Join(s.Headers, ", "), "(none)")))
		if s.Content != "" {
			fmt.Fprintf(w, "content:   %s\n", printable(s.Content))
		}
		if s.Error != "" {
			fmt.Fprintf(w, "error:     %s\n", printable(s.Error))
		}
		fmt.Fprintln(w)
	}
}
