package mediator

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/riverqueue/river"
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
}

// Kind implements river.JobArgs.
func (claimArgs) Kind() string { return kindClaim }

// claimWorker finds or creates the insuree's CHT person and posts the claim
// report, exactly once per claim.
type claimWorker struct {
	river.WorkerDefaults[claimArgs]
	m *Mediator
}

// Work implements river.Worker. A job can run again after a crash, a timeout
// or a lost answer, so every step looks before it creates: the delivery
// record, the insuree→person mapping and the CHT's own indexes.
func (w *claimWorker) Work(ctx context.Context, job *river.Job[claimArgs]) error {
	m, claim := w.m, job.Args.Claim
	log := m.log.With().Int64("job_id", job.ID).Str("job_kind", kindClaim).
		Int("attempt", job.Attempt).Str("claim_uuid", claim.UUID).Logger()
	ctx = log.WithContext(ctx)

	key := claimKey(claim.UUID)
	if done, err := m.delivered(ctx, job.Attempt, kindClaim, key); err != nil || done {
		return err
	}
	// A claim the report cannot be made of (a date outside the Bikram Sambat
	// table) fails before anything is created; the person is filled in next.
	report, err := mapping.OPReport(claim, "", m.opts.ClaimForm)
	if err != nil {
		return jobOutcome(ctx, err)
	}
	var personID, reportID string
	err = m.withUpstream(ctx, func() (err error) {
		if personID, err = m.person(ctx, claim.InsureeUUID); err != nil {
			return err
		}
		report.Fields[mapping.FieldPatientID] = personID
		reportID, err = m.claimReport(ctx, claim.UUID, report, job.Attempt > 1)
		return err
	})
	if err != nil {
		return jobOutcome(ctx, err)
	}
	if err := m.opts.Store.MarkDelivered(ctx, kindClaim, key, reportID); err != nil {
		return err
	}
	log.Info().Str("person_id", personID).Str("report_id", reportID).Msg("claim delivered to the CHT")
	return nil
}

// person returns the CHT person id of an insuree: the stored mapping, else a
// person found by openimis_id in the CHT, else a new person. The new person's
// _id derives from the insuree UUID, so concurrent or repeated creates
// conflict rather than duplicate.
func (m *Mediator) person(ctx context.Context, insureeUUID string) (string, error) {
	log := zerolog.Ctx(ctx)
	if id, ok := m.persons.Load(insureeUUID); ok {
		return id.(string), nil
	}
	if id, ok, err := m.opts.Store.Person(ctx, insureeUUID); err != nil || ok {
		if ok {
			m.rememberPerson(insureeUUID, id)
		}
		return id, err
	}
	ids, err := m.opts.CHT.FindContacts(ctx, "openimis_id", insureeUUID)
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
		return ids[0], m.savePerson(ctx, insureeUUID, ids[0])
	}

	patient, err := m.opts.OpenIMIS.GetPatient(ctx, insureeUUID)
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
	p := mapping.Person(insureeUUID, patient, m.opts.PlaceID)
	id, err := m.opts.CHT.CreatePerson(ctx, p)
	if cht.IsConflict(err) {
		id, err = p.ID, nil
	}
	if err != nil {
		return "", fmt.Errorf("create person: %w", err)
	}
	log.Info().Str("person_id", id).Msg("created CHT person for insuree")
	return id, m.savePerson(ctx, insureeUUID, id)
}

// savePerson records an insuree's person in the store and in memory.
func (m *Mediator) savePerson(ctx context.Context, insureeUUID, personID string) error {
	if err := m.opts.Store.SavePerson(ctx, insureeUUID, personID); err != nil {
		return err
	}
	m.rememberPerson(insureeUUID, personID)
	return nil
}

// maxCachedPersons bounds the in-memory insuree→person cache (about 150
// bytes an entry); past it the cache starts over.
const maxCachedPersons = 100_000

func (m *Mediator) rememberPerson(insureeUUID, personID string) {
	if m.cachedPersons.Add(1) > maxCachedPersons {
		m.persons.Clear()
		m.cachedPersons.Store(1)
	}
	m.persons.Store(insureeUUID, personID)
}

// claimReport posts the claim's report. After an earlier attempt (which may
// have posted it before its answer was lost) it first looks for the report in
// the CHT: the records API has no idempotency key.
func (m *Mediator) claimReport(ctx context.Context, claimUUID string, report cht.Report, retry bool) (string, error) {
	if retry {
		ids, err := m.opts.CHT.FindReports(ctx, "op_claim_uuid", claimUUID)
		switch {
		case cht.IsNotFound(err):
			zerolog.Ctx(ctx).Warn().Msg("CHT before 4.18 has no report search: the retried claim report may duplicate one an earlier attempt created")
		case err != nil:
			return "", fmt.Errorf("find earlier report: %w", err)
		case len(ids) > 0:
			zerolog.Ctx(ctx).Info().Str("report_id", ids[0]).Msg("claim report found from an earlier attempt")
			return ids[0], nil
		}
	}
	id, err := m.opts.CHT.CreateReport(ctx, report)
	if err != nil {
		return "", fmt.Errorf("post claim report: %w", err)
	}
	return id, nil
}

func isForbidden(err error) bool {
	var ae *openimis.APIError
	return errors.As(err, &ae) && ae.Status == http.StatusForbidden
}
