package mediator

import (
	"context"
	"fmt"
	"net/http"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/fhir"
	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// kindSourceClaim is the receipt kind and job kind of a claim outcome from a
// FHIR source other than openIMIS (spec §8). Its receipt keys are
// mapping.SourceClaimKey: source, resource type and id.
const kindSourceClaim = "fhir_claim"

// sourceClaimArgs is the job that brings one claim outcome of a FHIR source
// to the CHT: mapped already when the notification or the search carried
// the resource, else read by the job (an id-only notification, or a PUT
// that named the resource without its body).
type sourceClaimArgs struct {
	Source string               `json:"source"`
	Type   string               `json:"type"`
	ID     string               `json:"id"`
	Claim  *mapping.SourceClaim `json:"claim,omitempty"`
}

// Kind implements river.JobArgs.
func (sourceClaimArgs) Kind() string { return kindSourceClaim }

// sourceClaimWorker delivers a source's claim outcome as an openIMIS claim is
// delivered: the person found or created (keyed by source and patient), then
// the OP report, exactly once.
type sourceClaimWorker struct {
	river.WorkerDefaults[sourceClaimArgs]
	d       *delivery
	sources *sources
}

// Work implements river.Worker; see claimWorker.Work for why every step
// looks before it creates.
func (w *sourceClaimWorker) Work(ctx context.Context, job *river.Job[sourceClaimArgs]) error {
	d, args := w.d, job.Args
	log := jobLog(d.log, job.JobRow).Str("source", args.Source).Str("claim_id", args.ID).Logger()
	ctx = log.WithContext(ctx)
	src := w.sources.get(args.Source)
	if src == nil {
		return jobOutcome(ctx, river.JobCancel(fmt.Errorf("source %q is not in FHIR_SOURCES any more; add it back and retry the job", args.Source)))
	}
	key := mapping.SourceClaimKey(args.Source, args.Type, args.ID)
	if stop, err := d.begin(ctx, job.JobRow, kindSourceClaim, key); stop {
		return err
	}
	claim := args.Claim
	if claim == nil {
		var gone bool
		err := d.withUpstream(ctx, func() (err error) {
			claim, gone, err = readSourceClaim(ctx, src, args.Type, args.ID)
			return err
		})
		if err != nil {
			return jobOutcome(ctx, err)
		}
		if gone {
			log.Warn().Msg("the claim outcome was deleted on the source before it could be read; nothing to report")
			return d.store.MarkDelivered(ctx, kindSourceClaim, key, "deleted")
		}
	}
	report, err := mapping.OPReport(claim.Claim, "", d.claimForm)
	if err != nil {
		return jobOutcome(ctx, err)
	}
	return d.deliverReport(ctx, kindSourceClaim, key, claim.UUID, report, job.Attempt,
		func() (string, error) { return d.sourcePerson(ctx, src, *claim) })
}

// readSourceClaim reads a claim outcome from its source, by the configured
// base (never a URL the notification gave: trap 13), and maps it. gone is
// true when the server no longer has it.
func readSourceClaim(ctx context.Context, src *source, typ, id string) (*mapping.SourceClaim, bool, error) {
	raw, err := src.Client.Read(ctx, typ, id)
	if fhir.IsGone(err) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s/%s: %w", typ, id, err)
	}
	claim, err := sourceClaimOf(src, raw)
	if err != nil {
		return nil, false, err
	}
	return &claim, false, nil
}

// sourcePerson returns the CHT person of a source claim's patient: the
// stored mapping, else a person found by source_patient_id in the CHT,
// else a new person with the patient's details when the source lets the
// mediator read them. Its _id derives from the source and the patient, so
// that concurrent or repeated creates conflict rather than duplicate.
func (d *delivery) sourcePerson(ctx context.Context, src *source, claim mapping.SourceClaim) (string, error) {
	log := zerolog.Ctx(ctx)
	key := claim.PersonKey()
	if id, ok, err := d.knownPerson(ctx, key); err != nil || ok {
		return id, err
	}
	ids, err := d.cht.FindContacts(ctx, "source_patient_id", key)
	switch {
	case cht.IsNotFound(err):
		log.Debug().Msg("cht contact search unavailable")
	case err != nil:
		return "", fmt.Errorf("find person for patient: %w", err)
	case len(ids) > 0:
		if len(ids) > 1 {
			log.Warn().Strs("person_ids", ids).Msg("several CHT persons carry this source_patient_id; using the first")
		}
		return ids[0], d.savePerson(ctx, key, ids[0])
	}
	var patient *mapping.SourcePatient
	if claim.PatientID != "" {
		raw, err := src.Client.Read(ctx, "Patient", claim.PatientID)
		switch {
		case fhir.HasStatus(err, http.StatusForbidden, http.StatusNotFound, http.StatusGone):
			log.Warn().Err(err).Msg("the source does not show the patient; creating the CHT person without name details")
		case err != nil:
			return "", fmt.Errorf("read patient: %w", err)
		default:
			if patient, err = mapping.ParseSourcePatient(raw); err != nil {
				log.Warn().Err(err).Msg("the source's patient is unusable; creating the CHT person without name details")
			}
		}
	}
	p := mapping.SourcePerson(claim, patient, d.placeID)
	id, err := d.cht.CreatePerson(ctx, p)
	if cht.IsConflict(err) {
		id, err = p.ID, nil
	}
	if err != nil {
		return "", fmt.Errorf("create person: %w", err)
	}
	log.Info().Str("person_id", id).Msg("created CHT person for the source's patient")
	return id, d.savePerson(ctx, key, id)
}
