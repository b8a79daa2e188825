package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/cmd/internal/app"
	"github.com/cht-openimis/cht-openimis-mediator/config"
	"github.com/cht-openimis/cht-openimis-mediator/fhir/fhirtest"
	"github.com/cht-openimis/cht-openimis-mediator/openhim/openhimtest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

// Demo credentials: this is a sandbox on 127.0.0.1, printed on purpose.
const (
	imisUser     = "mediator-api"
	imisPass     = "imis-sandbox"
	chtPass      = "cht-sandbox"
	mediatorUser = "openimis"
	mediatorPass = "mediator-sandbox"

	claimUUID = "7c1b2f3e-5a6d-4e8f-9a0b-1c2d3e4f5a6b"
	claimCode = "CLM-0001"
	reportID  = "cht-report-0001" // the health worker's claims_feedback report
)

// sandbox holds the running fakes and mediator.
type sandbox struct {
	out io.Writer
	oi  *openimistest.Server
	cht *chttest.Server
	him *openhimtest.Server
	dir string
	// sourceName and source are the FHIR source of --source and its fake
	// (nil without); sourceReport is the CHT report its claim became.
	sourceName   string
	source       *fhirtest.Server
	sourceReport string
	logPath      string
	mediator     string // base URL
	stop         context.CancelFunc
	done         chan error
}

func start(ctx context.Context, out io.Writer, source string) (*sandbox, error) {
	dir, err := os.MkdirTemp("", "cht-openimis-sandbox-")
	if err != nil {
		return nil, err
	}
	s := &sandbox{
		out: out,
		dir: dir,
		oi:  openimistest.New(openimistest.Options{Username: imisUser, Password: imisPass, ClaimSubscriptions: true}),
		cht: chttest.New(chttest.Options{Password: chtPass}),
		him: openhimtest.New(openhimtest.Options{}),
	}
	if source != "" {
		s.sourceName, s.source = source, fhirtest.New(sourceFakes[source].options)
	}
	port, err := freePort()
	if err != nil {
		s.close()
		return nil, err
	}
	s.mediator = "http://127.0.0.1:" + strconv.Itoa(port)

	v := viper.New()
	for k, val := range map[string]string{
		"OPENIMIS_API_URL":               s.oi.URL,
		"OPENIMIS_USERNAME":              imisUser,
		"OPENIMIS_PASSWORD":              imisPass,
		"CHT_OPENIMIS_CALLBACK_ENDPOINT": s.mediator + "/mediator/claim-response",
		"CHT_URL":                        s.cht.URL,
		"CHT_USERNAME":                   chttest.DefaultUsername,
		"CHT_PASSWORD":                   chtPass,
		"CHT_PLACE_ID":                   chttest.DefaultPlaceID,
		"MEDIATOR_USERNAME":              mediatorUser,
		"MEDIATOR_PASSWORD":              mediatorPass,
		"MEDIATOR_URL":                   s.mediator,
		"OPENHIM_API_URL":                s.him.URL,
		"OPENHIM_USERNAME":               openhimtest.RootEmail,
		"OPENHIM_PASSWORD":               openhimtest.RootPassword,
		"OPENHIM_TRUST_SELF_SIGNED":      "true",
		"DATABASE_URL":                   "sqlite://" + filepath.Join(dir, "mediator.db"),
		"PORT":                           strconv.Itoa(port),
		"LOG_LEVEL":                      "debug",
		// The story shows the subscription path; a catch-up poll could
		// otherwise find the claim first and the notification would be a
		// "duplicate".
		"CLAIM_POLL_INTERVAL": "0",
	} {
		v.Set(k, val)
	}
	if s.source != nil {
		for k, val := range sourceEnv(s.sourceName, s.source) {
			v.Set(k, val)
		}
	}
	cfg, err := config.Load(v)
	if err != nil {
		s.close()
		return nil, err
	}
	s.logPath = filepath.Join(dir, "mediator.log")
	logFile, err := os.Create(s.logPath)
	if err != nil {
		s.close()
		return nil, err
	}
	mctx, cancel := context.WithCancel(ctx)
	s.stop, s.done = cancel, make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		err := app.Serve(mctx, cfg, "sandbox", logFile, ready)
		logFile.Close()
		s.done <- err
	}()

	if s.source != nil {
		s.say("Starting fake openIMIS, CHT, OpenHIM and " + s.sourceName + ", and the real mediator on 127.0.0.1")
	} else {
		s.say("Starting fake openIMIS, CHT and OpenHIM, and the real mediator on 127.0.0.1")
	}
	select {
	case <-ready:
	case err := <-s.done:
		s.done <- err
		s.close()
		return nil, fmt.Errorf("the mediator did not start: %w (log: %s)", err, s.logPath)
	case <-time.After(30 * time.Second):
		s.close()
		return nil, errors.New("the mediator did not start within 30 s")
	}
	s.detail("openIMIS  %s", s.oi.FHIRURL())
	s.detail("CHT       %s", s.cht.URL)
	s.detail("OpenHIM   %s", s.him.URL)
	if s.source != nil {
		s.detail("%-9s %s", s.sourceName, s.source.BaseURL)
	}
	s.detail("mediator  %s  (log: %s)", s.mediator, s.logPath)
	return s, nil
}

// close stops the mediator and the fakes and removes the temporary files.
func (s *sandbox) close() {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
	s.oi.Close()
	s.cht.Close()
	s.him.Close()
	if s.source != nil {
		s.source.Close()
	}
	os.RemoveAll(s.dir)
}

// play runs the story, step by step, and prints a summary.
func (s *sandbox) play(ctx context.Context) error {
	// Startup: login, subscription, OpenHIM registration.
	s.say("1. The mediator logs in to openIMIS, subscribes to Claim and registers with OpenHIM")
	var sub openimistest.Subscription
	if err := s.wait(ctx, "the Claim subscription", func() bool {
		subs := s.oi.Subscriptions()
		if len(subs) == 1 {
			sub = subs[0]
		}
		return len(subs) == 1
	}); err != nil {
		return err
	}
	s.detail("subscription %s: criteria %s, endpoint %s, ends %s", sub.ID, sub.Criteria, sub.Endpoint, sub.End.Format(time.DateOnly))
	if err := s.wait(ctx, "the OpenHIM registration", func() bool {
		_, ok := s.him.Mediator("urn:mediator:cht-openimis-mediator")
		return ok
	}); err != nil {
		return err
	}
	s.detail("registered with OpenHIM as urn:mediator:cht-openimis-mediator")
	// The operator installs the default channels with the console's "+":
	// their routes carry the mediator's credentials from the registration.
	if err := s.him.InstallChannels("urn:mediator:cht-openimis-mediator"); err != nil {
		return err
	}
	s.detail("default channels installed with the console's \"+\": %d", len(s.him.Channels()))

	// openIMIS emits a claim created today.
	s.say("2. A claim is entered in openIMIS; openIMIS posts its ClaimResponse to the subscription")
	body := openimistest.ClaimResponseFixture(claimUUID, claimCode, openimistest.SeedPatientID)
	var cr map[string]any
	_ = json.Unmarshal(body, &cr)
	cr["created"] = time.Now().In(time.FixedZone("NPT", 5*3600+45*60)).Format(time.DateOnly)
	body, _ = json.Marshal(cr)
	deliveries := s.oi.EmitClaim(ctx, body)
	if len(deliveries) != 1 || !deliveries[0].Success {
		return fmt.Errorf("openIMIS could not deliver the claim: %+v", deliveries)
	}
	s.detail("POST %s -> %d %s", deliveries[0].Endpoint, deliveries[0].Status, strings.TrimSpace(string(deliveries[0].ResponseBody)))

	// The CHT gets the person and the OP report.
	s.say("3. The mediator creates the insuree in the CHT and posts the OP report")
	report, err := s.waitReport(ctx, claimUUID)
	if err != nil {
		return err
	}
	person, _ := s.cht.Person(fmt.Sprint(report.Fields["patient_id"]))
	s.detail("person %s: %q, openimis_id %s, under place %s", person.ID, person.Doc["name"], person.Doc["openimis_id"], chttest.DefaultPlaceID)
	opDate, _ := report.Fields["op_date"].(float64)
	s.detail("report %s: form %s, claim %s (%s), BS date %s-%s-%s, op_date %.0f (%s)",
		report.ID, report.Form, report.Fields["op_claim_id"], report.Fields["op_claim_uuid"],
		report.Fields["op_year"], report.Fields["op_month"], report.Fields["op_day"], opDate,
		time.UnixMilli(int64(opDate)).UTC().Format(time.RFC3339))
	s.detail("the CHT now gives a health worker the task to visit the insuree")

	// CHT outbound push of the feedback, through OpenHIM.
	s.say("4. The health worker's claims_feedback report reaches the mediator (CHT outbound push, through OpenHIM)")
	feedback, _ := json.Marshal(map[string]any{
		"doc": map[string]any{"_id": reportID}, "care_rendered": "yes", "payment_asked": "no",
		"drug_prescribed": "yes", "drug_received": "yes", "assessment_rating": "4",
		"claimUUID": claimUUID, "insureeUUID": openimistest.SeedPatientID,
	})
	// Through the installed channel: OpenHIM drops the CHT client's
	// Authorization and its route presents the mediator's credentials.
	res, err := s.him.Send(ctx, openhimtest.ForwardRequest{
		Method: http.MethodPost, Path: "/mediator/claims-feedback", Body: feedback, ClientID: "cht",
		Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Basic Y2h0LW91dGJvdW5kOmNsaWVudC1zZWNyZXQ="}},
	})
	if err != nil {
		return err
	}
	s.detail("OpenHIM transaction %s -> %d %s (%s)", res.TransactionID, res.Status, bytes.TrimSpace(res.Body), res.TransactionStatus)

	// openIMIS stores it.
	s.say("5. The mediator delivers the feedback to openIMIS")
	var comm openimistest.Communication
	if err := s.wait(ctx, "the feedback in openIMIS", func() bool {
		comms := s.oi.Communications()
		if len(comms) == 1 {
			comm = comms[0]
		}
		return len(comms) == 1
	}); err != nil {
		return err
	}
	s.detail("openIMIS has no QuestionnaireResponse endpoint: the answers went in as a Communication")
	s.detail("feedback %s for claim %s: care rendered %t, payment asked %t, drug prescribed %t, drug received %t, rating %d",
		comm.FeedbackID, comm.ClaimID, comm.CareRendered, comm.PaymentAsked, comm.DrugPrescribed, comm.DrugReceived, comm.Asessment)

	if s.source != nil {
		if err := s.playSource(ctx, 6); err != nil {
			return err
		}
	}

	s.say("Summary")
	s.detail("claim %s (%s) -> CHT report %s for person %s", claimCode, claimUUID, report.ID, person.ID)
	s.detail("CHT report %s -> openIMIS feedback %s", reportID, comm.FeedbackID)
	if s.source != nil {
		s.detail("%s claim %s (%s) -> CHT report %s", s.sourceName, sourceClaimCode, sourceClaimID, s.sourceReport)
	}
	s.detail("the story completed")
	return nil
}

// printAccess prints the URLs and credentials for exploring with curl.
func (s *sandbox) printAccess() {
	s.say("Everything keeps running until Ctrl-C. Try:")
	s.detail("curl %s/ready", s.mediator)
	s.detail("curl %s/metrics | grep ^mediator_", s.mediator)
	s.detail("curl -u %s:%s -H 'Content-Type: application/json' --data @testdata/openimis/test_claimResponse.json %s/mediator/claim-response",
		mediatorUser, mediatorPass, s.mediator)
	s.detail("curl -u %s:%s %sPatient/%s/", imisUser, imisPass, s.oi.FHIRURL(), openimistest.SeedPatientID)
	s.detail("curl -u %s:%s %s/api/v1/contact/uuid?freetext=openimis_id:%s", chttest.DefaultUsername, chtPass, s.cht.URL, openimistest.SeedPatientID)
	s.detail("DATABASE_URL=sqlite://%s go run ./cmd/mediator jobs list --state all", filepath.Join(s.dir, "mediator.db"))
	if s.source != nil {
		s.detail("curl %s/metadata   (the %s fake)", s.source.BaseURL, s.sourceName)
	}
	s.detail("the mediator's log: %s", s.logPath)
}

// waitReport waits for the OP report of the claim id.
func (s *sandbox) waitReport(ctx context.Context, id string) (chttest.Report, error) {
	var report chttest.Report
	err := s.wait(ctx, "the OP report of claim "+id, func() bool {
		for _, r := range s.cht.Reports() {
			if r.Fields["op_claim_uuid"] == id {
				report = r
				return true
			}
		}
		return false
	})
	return report, err
}

// wait polls cond until it holds, for at most 30 seconds.
func (s *sandbox) wait(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s (log: %s)", what, s.logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (s *sandbox) say(msg string) { fmt.Fprintf(s.out, "\n%s\n", msg) }

func (s *sandbox) detail(format string, args ...any) {
	fmt.Fprintf(s.out, "   "+format+"\n", args...)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
