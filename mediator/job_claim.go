package mediator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// kindClaim is the receipt kind and job kind of a claim.
const kindClaim = "claim"

// claimArgs is the job that brings one claim to the CHT.
type claimArgs struct {
	Claim mapping.Claim `json:"claim"`
	// Polled is set for a claim the catch-up poll found: its ClaimResponse's
	// created is the poll's date, so the job reads the claim's own date from
	// the Claim (docs/upstreams/openimis.md trap 21).
	Polled bool `json:"polled,omitempty"`
}

// Kind implements river.JobArgs.
func (claimArgs) Kind() string { return kindClaim }

// claimKey is the receipt key of a claim: its UUID, lower-cased so that one
// claim is one key whatever case openIMIS sends.
func claimKey(uuid string) string { return strings.ToLower(uuid) }

// claimWorker finds or creates the insuree's CHT person and posts the claim
// report, exactly once per claim.
type claimWorker struct {
	river.WorkerDefaults[claimArgs]
	d *delivery
}

// Work implements river.Worker. A job can run again after a crash, a timeout
// or a lost answer, so every step looks before it creates: the delivery
// record, the insuree→person mapping and the CHT's own indexes.
func (w *claimWorker) Work(ctx context.Context, job *river.Job[claimArgs]) error {
	d, claim := w.d, job.Args.Claim
	log := jobLog(d.log, job.JobRow).Str("claim_uuid", claim.UUID).Logger()
	ctx = log.WithContext(ctx)

	key := claimKey(claim.UUID)
	if stop, err := d.begin(ctx, job.JobRow, kindClaim, key); stop {
		return err
	}
	if job.Args.Polled {
		if err := d.withUpstream(ctx, func() error { return d.claimDate(ctx, &claim) }); err != nil {
			return jobOutcome(ctx, err)
		}
	}
	// A claim the report cannot be made of (a date outside the Bikram Sambat
	// table) fails before anything is created; the person is filled in next.
	report, err := mapping.OPReport(claim, "", d.claimForm)
	if err != nil {
		return jobOutcome(ctx, err)
	}
	return d.deliverReport(ctx, kindClaim, key, claim.UUID, report, job.Attempt,
		func() (string, error) { return d.person(ctx, claim.InsureeUUID) })
}

// begin opens every claim job: stop is true when an earlier attempt
// delivered the claim already (err nil), or when the previous attempt's
// report may still be saving in the CHT, so that looking for it now could
// miss it and post it twice (err a snooze).
func (d *delivery) begin(ctx context.Context, job *rivertype.JobRow, kind, key string) (stop bool, err error) {
	if done, err := d.delivered(ctx, job.Attempt, kind, key); err != nil || done {
		return true, err
	}
	if wait := d.lateSaveWait(job, time.Now()); wait > 0 {
		zerolog.Ctx(ctx).Info().Dur("wait", wait).Msg("the previous attempt's report may still be saving in the CHT; looking for it later")
		return true, river.JobSnooze(wait)
	}
	return false, nil
}

// knownPerson returns the CHT person already recorded for a person key (an
// insuree UUID, or a source's patient key): from memory, else from the
// store, which it then remembers.
func (d *delivery) knownPerson(ctx context.Context, key string) (string, bool, error) {
	if id, ok := d.persons.get(key); ok {
		return id, true, nil
	}
	id, ok, err := d.store.Person(ctx, key)
	if ok {
		d.persons.put(key, id)
	}
	return id, ok, err
}

// deliverReport finds or creates the claim's person (person), posts its
// report and records the delivery of (kind, key): the last steps of every
// claim job, an openIMIS claim or another source's, in one upstream slot.
func (d *delivery) deliverReport(ctx context.Context, kind, key, claimID string, report cht.Report, attempt int,
	person func() (string, error)) error {
	var personID, reportID string
	err := d.withUpstream(ctx, func() (err error) {
		if personID, err = person(); err != nil {
			return err
		}
		report.Fields[mapping.FieldPatientID] = personID
		reportID, err = d.claimReport(ctx, claimID, personID, report, attempt > 1)
		return err
	})
	if err != nil {
		return jobOutcome(ctx, err)
	}
	if err := d.store.MarkDelivered(ctx, kind, key, reportID); err != nil {
		return err
	}
	zerolog.Ctx(ctx).Info().Str("person_id", personID).Str("report_id", reportID).Msg("claim delivered to the CHT")
	return nil
}

// claimDate gives a polled claim the date of its Claim (GET Claim/<uuid>/,
// created): openIMIS writes a ClaimResponse's created when it converts it,
// so the poll saw the poll's date (docs/upstreams/openimis.md trap 21).
// Reading it here, not in the poll, costs one request per polled claim but
// keeps the poll one quick page walk, and a failure is retried for this claim
// alone, with the job's backoff and within the upstream limits. A Claim the
// user may not read, or without a usable date, leaves the ClaimResponse's
// date, with a warning.
func (d *delivery) claimDate(ctx context.Context, claim *mapping.Claim) error {
	log := zerolog.Ctx(ctx)
	cl, err := d.oi.GetClaim(ctx, claim.UUID)
	if isForbidden(err) {
		log.Warn().Str("claimresponse_date", claim.Created).
			Msg("the openIMIS user may not read the claim; its report takes the ClaimResponse's date, which is the day it was polled")
		return nil
	}
	if err != nil {
		return fmt.Errorf("read claim date: %w", err)
	}
	date, err := d.dates().ClaimDate(cl.Created)
	if err != nil {
		log.Warn().Str("claimresponse_date", claim.Created).Str("problem", err.Error()).
			Msg("the claim has no usable date; its report takes the ClaimResponse's date, which is the day it was polled")
		return nil
	}
	if date != claim.Created {
		log.Debug().Str("claim_date", date).Str("claimresponse_date", claim.Created).Msg("polled claim dated from its Claim")
	}
	claim.Created = date
	return nil
}

// person returns the CHT person id of an insuree: the stored mapping, else a
// person found by openimis_id in the CHT, else a new person. The new person's
// _id derives from the insuree UUID, so concurrent or repeated creates
// conflict rather than duplicate.
func (d *delivery) person(ctx context.Context, insureeUUID string) (string, error) {
	log := zerolog.Ctx(ctx)
	if id, ok, err := d.knownPerson(ctx, insureeUUID); err != nil || ok {
		return id, err
	}
	// The CHT search and the Patient read do not depend on each other: both
	// run at once, and the Patient is used only when the search finds
	// nobody (for a new insuree, the usual case, that saves a round trip).
	type read struct {
		patient *openimis.Patient
		err     error
	}
	patientc := make(chan read, 1)
	pctx, cancelPatient := context.WithCancel(ctx)
	defer cancelPatient()
	go func() {
		p, err := d.oi.GetPatient(pctx, insureeUUID)
		patientc <- read{p, err}
	}()
	ids, err := d.cht.FindContacts(ctx, "openimis_id", insureeUUID)
	switch {
	case cht.IsNotFound(err):
		// CHT before 4.18 has no freetext search: rely on the derived _id.
		log.Debug().Msg("cht contact search unavailable")
	case err != nil:
		return "", fmt.Errorf("find person for insuree: %w", err)
	case len(ids) > 0:
		if len(ids) > 1 {
			log.Warn().Strs("person_ids", ids).Msg("several CHT persons carry this openimis_id; using the first")
		}
		return ids[0], d.savePerson(ctx, insureeUUID, ids[0])
	}

	r := <-patientc
	patient, err := r.patient, r.err
	if err != nil {
		if !isForbidden(err) {
			if openimis.NotShown(err) {
				return "", fmt.Errorf("read insuree (unknown to openIMIS, or outside the area of the mediator's openIMIS user): %w", err)
			}
			return "", fmt.Errorf("read insuree: %w", err)
		}
		log.Warn().Msg("openIMIS user may not read insurees; creating the CHT person without name details")
		patient = nil
	}
	p := d.dates().Person(insureeUUID, patient, d.placeID)
	id, err := d.cht.CreatePerson(ctx, p)
	if cht.IsConflict(err) {
		id, err = p.ID, nil
	}
	if err != nil {
		return "", fmt.Errorf("create person: %w", err)
	}
	log.Info().Str("person_id", id).Msg("created CHT person for insuree")
	return id, d.savePerson(ctx, insureeUUID, id)
}

// savePerson records an insuree's person in the store and in memory.
func (d *delivery) savePerson(ctx context.Context, insureeUUID, personID string) error {
	if err := d.store.SavePerson(ctx, insureeUUID, personID); err != nil {
		return err
	}
	d.persons.put(insureeUUID, personID)
	return nil
}

// claimReport posts the claim's report for the person personID. After an
// earlier attempt (which may have posted it before its answer was lost) it
// first looks for the report in the CHT: the records API has no idempotency
// key.
func (d *delivery) claimReport(ctx context.Context, claimUUID, personID string, report cht.Report, retry bool) (string, error) {
	if retry {
		id, err := d.earlierReport(ctx, claimUUID, personID)
		switch {
		case cht.IsNotFound(err):
			zerolog.Ctx(ctx).Warn().Msg("CHT before 4.18 has no report search: the retried claim report may duplicate one an earlier attempt created")
		case err != nil:
			return "", fmt.Errorf("find earlier report: %w", err)
		case id != "":
			zerolog.Ctx(ctx).Info().Str("report_id", id).Msg("claim report found from an earlier attempt")
			return id, nil
		}
	}
	id, err := d.cht.CreateReport(ctx, report)
	var answered *cht.APIError
	switch {
	case err != nil && !errors.As(err, &answered):
		// A timeout or a lost connection: the CHT may save it later.
		return "", fmt.Errorf("%s%w", errPostReportNoAnswer, err)
	case err != nil:
		return "", fmt.Errorf("post claim report: %w", err)
	}
	return id, nil
}

// earlierReport returns the report of this claim an earlier attempt posted,
// "" when there is none: a report with the claim's op_claim_uuid, and, when
// FHIR sources are configured, whose patient_id is the claim's person. With
// sources, the id alone is not the claim: two FHIR
// sources, or a source and openIMIS, may carry the same id (claims are keyed
// by source, resource type and id, spec §8), and their reports differ by
// their person, which is keyed by source and patient (by insuree for
// openIMIS), a source having one resource type. A field of the mediator's
// own could not carry the source: the CHT drops the fields the OP form does
// not define (docs/upstreams/cht.md §1, trap 3).
func (d *delivery) earlierReport(ctx context.Context, claimUUID, personID string) (string, error) {
	ids, err := d.cht.FindReports(ctx, "op_claim_uuid", claimUUID)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	if !d.sharedClaimIDs {
		// openIMIS alone: its claim UUIDs are unique, and one look-up
		// (one round trip in a retry, which often follows a slow CHT)
		// does.
		return ids[0], nil
	}
	mine, err := d.cht.FindReports(ctx, mapping.FieldPatientID, personID)
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		if slices.Contains(mine, id) {
			return id, nil
		}
	}
	return "", nil
}

// errPostReportNoAnswer starts the error of a report POST that got no answer.
const errPostReportNoAnswer = "post claim report (no answer): "

// lateSaveWait is how long a retried claim job waits before it looks for
// the report an earlier attempt posted without an answer. The CHT
// runs its synchronous transitions before it saves a report, and saves it
// even after the client gave up (docs/upstreams/cht.md §1): a look-up right
// after a timed-out POST finds nothing, and a second POST would duplicate
// the report. The retry looks Options.LateSaveWait (two upstream timeouts)
// after the failed POST.
func (d *delivery) lateSaveWait(job *rivertype.JobRow, now time.Time) time.Duration {
	if job.Attempt <= 1 || len(job.Errors) == 0 {
		return 0
	}
	last := job.Errors[len(job.Errors)-1]
	if !strings.Contains(last.Error, errPostReportNoAnswer) {
		return 0
	}
	wait := d.saveWait
	if wait <= 0 {
		wait = 2 * d.upstreamTimeout()
	}
	return last.At.Add(wait).Sub(now)
}

func isForbidden(err error) bool {
	var ae *openimis.APIError
	return errors.As(err, &ae) && ae.Status == http.StatusForbidden
}
