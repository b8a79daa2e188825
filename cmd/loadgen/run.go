package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cht-openimis/cht-openimis-mediator/cht/chttest"
	"github.com/cht-openimis/cht-openimis-mediator/openimis/openimistest"
)

const (
	imisPass     = "imis-load"
	chtPass      = "cht-load"
	mediatorUser = "openimis"
	mediatorPass = "mediator-load"
)

// buildMediator builds ./cmd/mediator into dir, with the pprof tag for a
// CPU profile: once for all the runs.
func buildMediator(dir string, profile bool) (string, error) {
	bin := filepath.Join(dir, "mediator")
	build := []string{"build", "-o", bin}
	if profile {
		build = append(build, "-tags", "pprof")
	}
	if b, err := exec.Command("go", append(build, "./cmd/mediator")...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build: %v\n%s", err, b)
	}
	return bin, nil
}

type options struct {
	path     string
	senders  int
	duration time.Duration
	latency  time.Duration
	backlog  int
	insurees int
	workers  int
	binary   string
	database string
	logLevel string
	// pin runs the mediator on CPU 0 and this process on CPU 1.
	pin bool
	// cpuProfile is where to write a CPU profile of the mediator.
	cpuProfile string
}

// result is one run's figures.
type result struct {
	sent, acked, errors int
	sendTime            time.Duration
	latencies           []time.Duration
	delivered           int
	deliverTime         time.Duration // from the first send to the last delivery
	peakRSS             int64         // kB
	storeBytes          int64
	// mediatorCPU and loadgenCPU are the CPU time (user and system) the
	// mediator and this process (the fakes and the senders) used from the
	// first send to the last delivery.
	mediatorCPU, loadgenCPU time.Duration
	drainRates              []float64 // deliveries/s over each tenth of a backlog
}

// summaryRow is one run's figures in the closing table.
type summaryRow struct {
	latency                 time.Duration
	ackRate, e2eRate        float64
	p99                     time.Duration
	cpuPerItem, harnessItem time.Duration // mediator's, and the fakes' and senders', per delivered item
	peakRSS                 int64         // kB
	delivered, acked        int
}

func run(ctx context.Context, o options, out io.Writer) (summaryRow, error) {
	row, err := runOnce(ctx, o, out)
	row.latency = o.latency
	return row, err
}

func runOnce(ctx context.Context, o options, out io.Writer) (summaryRow, error) {
	if o.path != "claims" && o.path != "feedback" {
		return summaryRow{}, fmt.Errorf("-path must be claims or feedback")
	}
	dir, err := os.MkdirTemp("", "loadgen-")
	if err != nil {
		return summaryRow{}, err
	}
	defer os.RemoveAll(dir)
	if o.database == "" {
		o.database = "sqlite://" + filepath.Join(dir, "mediator.db")
	}

	oi := openimistest.New(openimistest.Options{Username: "api", Password: imisPass, CountCacheTTL: -1})
	defer oi.Close()
	ch := chttest.New(chttest.Options{Password: chtPass})
	defer ch.Close()
	insurees := make([]string, o.insurees)
	for i := range insurees {
		insurees[i] = insureeUUID(i)
		oi.AddPatient(insurees[i], openimistest.PatientFixture(insurees[i], strconv.Itoa(300000+i)))
	}

	port, err := freePort()
	if err != nil {
		return summaryRow{}, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.CommandContext(ctx, o.binary)
	if o.pin {
		cmd = exec.CommandContext(ctx, "taskset", "-c", "0", o.binary)
	}
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PORT="+strconv.Itoa(port),
		"OPENIMIS_API_URL="+oi.URL, "OPENIMIS_USERNAME=api", "OPENIMIS_PASSWORD="+imisPass,
		"CHT_OPENIMIS_CALLBACK_ENDPOINT="+base+"/mediator/claim-response",
		"CHT_URL="+ch.URL, "CHT_USERNAME="+chttest.DefaultUsername, "CHT_PASSWORD="+chtPass,
		"CHT_PLACE_ID="+chttest.DefaultPlaceID,
		"MEDIATOR_USERNAME="+mediatorUser, "MEDIATOR_PASSWORD="+mediatorPass,
		"DATABASE_URL="+o.database, "CLAIM_POLL_INTERVAL=0", "LOG_LEVEL="+o.logLevel,
		"FEEDBACK_RESOURCE=Communication", "UPSTREAM_TIMEOUT=5s",
	)
	if o.workers > 0 {
		cmd.Env = append(cmd.Env, "WORKERS="+strconv.Itoa(o.workers))
	}
	var pprofAddr string
	if o.cpuProfile != "" {
		pp, err := freePort()
		if err != nil {
			return summaryRow{}, err
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(pp)
		cmd.Env = append(cmd.Env, "PPROF_ADDR="+pprofAddr) // the last value of a name wins
	}
	logFile, err := os.Create(filepath.Join(dir, "mediator.log"))
	if err != nil {
		return summaryRow{}, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return summaryRow{}, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitReady(ctx, base); err != nil {
		return summaryRow{}, err
	}
	oi.SetLatency(o.latency)
	ch.SetLatency(o.latency)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.senders * 2, MaxConnsPerHost: o.senders * 2}}
	body := bodies(o, oi, insurees)
	var res result
	var profileDone func() error
	start := time.Now()
	mediatorCPU0, loadgenCPU0 := cpuTime(cmd.Process.Pid), selfCPUTime()
	if o.backlog > 0 {
		// The CHT hangs: the workers' few requests wait (and time out after
		// UPSTREAM_TIMEOUT), every other job stays queued.
		ch.SetLatency(time.Hour)
		res = send(ctx, client, base, o.path, body, o.senders, 0, o.backlog)
		fmt.Fprintf(out, "queued %d claims in %s; the CHT answers again\n", res.acked, res.sendTime.Round(time.Millisecond))
		start = time.Now()
		profileDone = startProfile(ctx, pprofAddr, o.cpuProfile, o.duration)
		ch.SetLatency(o.latency)
	} else {
		profileDone = startProfile(ctx, pprofAddr, o.cpuProfile, o.duration)
		res = send(ctx, client, base, o.path, body, o.senders, o.duration, 0)
	}
	delivered := func() int {
		if o.path == "claims" {
			return ch.ReportCount()
		}
		return oi.CommunicationCount()
	}
	var rssMax atomic.Int64
	// In backlog mode, the drain rate of each tenth of the backlog shows
	// whether draining slows down as the queue empties or the store grows.
	tenth, lastCount, lastAt := (res.acked+9)/10, 0, start
	for {
		rssMax.Store(max(rssMax.Load(), peakRSS(cmd.Process.Pid)))
		n := delivered()
		if o.backlog > 0 && (n >= lastCount+tenth || (n >= res.acked && n > lastCount)) {
			res.drainRates = append(res.drainRates, float64(n-lastCount)/time.Since(lastAt).Seconds())
			lastCount, lastAt = n, time.Now()
		}
		if n >= res.acked {
			res.delivered = n
			break
		}
		if ctx.Err() != nil {
			return summaryRow{}, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.deliverTime = time.Since(start)
	res.mediatorCPU, res.loadgenCPU = cpuTime(cmd.Process.Pid)-mediatorCPU0, selfCPUTime()-loadgenCPU0
	res.peakRSS = max(rssMax.Load(), peakRSS(cmd.Process.Pid))
	if strings.HasPrefix(o.database, "sqlite://") {
		res.storeBytes = dirSize(filepath.Dir(strings.TrimPrefix(o.database, "sqlite://")), "mediator.db")
	}
	report(out, o, res)
	if err := profileDone(); err != nil {
		return summaryRow{}, fmt.Errorf("CPU profile: %w", err)
	}
	if o.cpuProfile != "" {
		fmt.Fprintf(out, "\nCPU profile of the mediator: go tool pprof -top %s\n", o.cpuProfile)
	}
	return rowOf(res), nil
}

// startProfile has the mediator's profiling listener at addr (a binary built
// with -tags pprof) record a CPU profile over the next d, written to file;
// the function it returns waits for the profile. With no addr it does
// nothing.
func startProfile(ctx context.Context, addr, file string, d time.Duration) func() error {
	if addr == "" {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		seconds := max(1, int((d+time.Second-1)/time.Second))
		url := "http://" + addr + "/debug/pprof/profile?seconds=" + strconv.Itoa(seconds)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			done <- err
			return
		}
		const hint = "(was the mediator built with -tags pprof?)"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- fmt.Errorf("%w %s", err, hint)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("%s answered %s %s", url, resp.Status, hint)
			return
		}
		f, err := os.Create(file)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		done <- errors.Join(err, f.Close())
	}()
	return func() error { return <-done }
}

// bodies returns the body generator: distinct claims, or feedback about
// distinct claims that openIMIS knows. Bodies are filled in from a template
// so that making them costs the load generator next to nothing; the
// feedback's claims are put into the fake openIMIS beforehand (enough for
// about 4 000 a second), and one at a time past that.
func bodies(o options, oi *openimistest.Server, insurees []string) func(i int) []byte {
	const claimSlot, codeSlot, insureeSlot = "{{claim-uuid-0000-0000-0000-00000000}}", "{{code}}", "{{insuree-uuid-000-0000-0000-00000000}}"
	claimTemplate := newTemplate(string(openimistest.ClaimResponseFixture(claimSlot, codeSlot, insureeSlot)), claimSlot, codeSlot, insureeSlot)
	ready := o.backlog
	if ready == 0 {
		ready = int(4000 * o.duration.Seconds())
	}
	// insuree is the insuree of claim i: one of the few, or (none given) a
	// new one for every claim, put into the fake openIMIS beforehand (about
	// 4 000 a second) and one at a time past that.
	insuree := func(i int) string { return insurees[i%max(len(insurees), 1)] }
	if len(insurees) == 0 {
		addPatient := func(i int) {
			id := insureeUUID(i)
			oi.AddPatient(id, openimistest.PatientFixture(id, strconv.Itoa(300000+i)))
		}
		for i := range ready {
			addPatient(i)
		}
		insuree = func(i int) string {
			if i >= ready {
				addPatient(i)
			}
			return insureeUUID(i)
		}
	}
	claimBody := func(i int, prefix string) []byte {
		return claimTemplate.fill(fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, i), "L"+strconv.Itoa(i), insuree(i))
	}
	if o.path == "claims" {
		return func(i int) []byte { return claimBody(i, "c1a10000") }
	}
	for i := range ready {
		oi.AddClaim(claimBody(i, "feedb000"), time.Now())
	}
	feedbackTemplate := newTemplate(`{"doc":{"_id":"report-{{i}}"},"care_rendered":"yes","payment_asked":"no",`+
		`"drug_prescribed":"yes","drug_received":"no","assessment_rating":"4",`+
		`"claimUUID":"{{claim}}","insureeUUID":"{{insuree}}"}`, "{{i}}", "{{claim}}", "{{insuree}}")
	return func(i int) []byte {
		if i >= ready {
			oi.AddClaim(claimBody(i, "feedb000"), time.Now())
		}
		return feedbackTemplate.fill(strconv.Itoa(i), fmt.Sprintf("feedb000-0000-4000-8000-%012d", i), insuree(i))
	}
}

// insureeUUID is the UUID of the i-th insuree of a run.
func insureeUUID(i int) string { return fmt.Sprintf("a11ce000-0000-4000-8000-%012d", i) }

// pinSelf pins this process (every thread, and those it starts later) to
// CPU 1, so that the mediator has CPU 0 to itself; it returns why not when
// it cannot.
func pinSelf() string {
	if runtime.NumCPU() < 2 {
		return "fewer than 2 CPUs"
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return "taskset not found (Debian: apt-get install util-linux)"
	}
	if b, err := exec.Command("taskset", "-a", "-p", "-c", "1", strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		return fmt.Sprintf("taskset: %v: %s", err, bytes.TrimSpace(b))
	}
	return ""
}

// rowOf is a run's line in the closing table.
func rowOf(r result) summaryRow {
	row := summaryRow{acked: r.acked, delivered: r.delivered, peakRSS: r.peakRSS}
	if r.sendTime > 0 {
		row.ackRate = float64(r.acked) / r.sendTime.Seconds()
	}
	if r.deliverTime > 0 {
		row.e2eRate = float64(r.delivered) / r.deliverTime.Seconds()
	}
	if len(r.latencies) > 0 {
		slices.Sort(r.latencies)
		row.p99 = r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*0.99))]
	}
	if r.delivered > 0 {
		row.cpuPerItem = r.mediatorCPU / time.Duration(r.delivered)
		row.harnessItem = r.loadgenCPU / time.Duration(r.delivered)
	}
	return row
}

// summary prints one line per run, for BENCHMARKS.md.
func summary(out io.Writer, o options, rows []summaryRow) {
	workload := "claims, a new insuree each"
	switch {
	case o.path == "feedback":
		workload = "feedback"
	case o.insurees > 0:
		workload = fmt.Sprintf("claims over %d insurees", o.insurees)
	}
	pinned := "mediator on CPU 0, load generator on CPU 1"
	if !o.pin {
		pinned = "not pinned"
	}
	fmt.Fprintf(out, "%s, %d senders, %s, %s:\n\n", workload, o.senders, o.duration, pinned)
	fmt.Fprintln(out, "| upstream latency | acked/s | end to end /s | ack p99 | mediator CPU per item | harness CPU per item | peak RSS | delivered / acked |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(out, "| %s | %.0f | %.0f | %s | %d µs | %d µs | %.1f MiB | %d / %d |\n", r.latency, r.ackRate, r.e2eRate,
			r.p99.Round(100*time.Microsecond), r.cpuPerItem.Microseconds(), r.harnessItem.Microseconds(),
			float64(r.peakRSS)/1024, r.delivered, r.acked)
	}
}

// template is a text with slots, each filled in by position.
type template struct {
	parts []string // text before each slot, then the text after the last
	slots []int    // which value fills each slot
}

// newTemplate splits text at every occurrence of the named slots.
func newTemplate(text string, slots ...string) template {
	var t template
	for {
		at, which := len(text), -1
		for k, slot := range slots {
			if i := strings.Index(text, slot); i >= 0 && i < at {
				at, which = i, k
			}
		}
		if which < 0 {
			t.parts = append(t.parts, text)
			return t
		}
		t.parts = append(t.parts, text[:at])
		t.slots = append(t.slots, which)
		text = text[at+len(slots[which]):]
	}
}

func (t template) fill(values ...string) []byte {
	n := 0
	for _, p := range t.parts {
		n += len(p)
	}
	b := make([]byte, 0, n+64*len(t.slots))
	for i, slot := range t.slots {
		b = append(b, t.parts[i]...)
		b = append(b, values[slot]...)
	}
	return append(b, t.parts[len(t.parts)-1]...)
}

// send runs the senders for duration d, or until n requests were sent.
func send(ctx context.Context, client *http.Client, base, path string, body func(int) []byte, senders int, d time.Duration, n int) result {
	route := "/mediator/claim-response"
	okStatus := http.StatusOK
	if path == "feedback" {
		route, okStatus = "/mediator/claims-feedback", http.StatusAccepted
	}
	var next atomic.Int64
	var mu sync.Mutex
	var res result
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			var lat []time.Duration
			acked, errs := 0, 0
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if (n > 0 && i >= n) || (n == 0 && time.Now().After(deadline)) {
					break
				}
				b := body(i)
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+route, bytes.NewReader(b))
				req.Header.Set("Content-Type", "application/json")
				req.SetBasicAuth(mediatorUser, mediatorPass)
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != okStatus {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
				acked++
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.acked += acked
			res.errors += errs
			mu.Unlock()
		})
	}
	wg.Wait()
	res.sendTime = time.Since(start)
	res.sent = res.acked + res.errors
	return res
}

func report(out io.Writer, o options, r result) {
	slices.Sort(r.latencies)
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "path\t%s\n", o.path)
	workers := "default"
	if o.workers > 0 {
		workers = strconv.Itoa(o.workers)
	}
	fmt.Fprintf(tw, "senders, upstream latency, workers\t%d, %s, %s\n", o.senders, o.latency, workers)
	fmt.Fprintf(tw, "acknowledged\t%d in %s (%.0f req/s), %d errors\n", r.acked, r.sendTime.Round(time.Millisecond),
		float64(r.acked)/r.sendTime.Seconds(), r.errors)
	if len(r.latencies) > 0 {
		fmt.Fprintf(tw, "ack latency p50 / p95 / p99\t%s / %s / %s\n", pct(0.50).Round(10*time.Microsecond),
			pct(0.95).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond))
	}
	fmt.Fprintf(tw, "end to end\t%d delivered in %s (%.0f /s)\n", r.delivered, r.deliverTime.Round(time.Millisecond),
		float64(r.delivered)/r.deliverTime.Seconds())
	if len(r.drainRates) > 0 {
		rates := make([]string, len(r.drainRates))
		for i, v := range r.drainRates {
			rates[i] = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(tw, "drain rate per tenth of the backlog\t%s /s\n", strings.Join(rates, " "))
	}
	if r.delivered > 0 {
		perItem := func(d time.Duration) string {
			return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(r.delivered))
		}
		fmt.Fprintf(tw, "CPU per item: mediator, fakes and senders\t%s, %s\n", perItem(r.mediatorCPU), perItem(r.loadgenCPU))
	}
	fmt.Fprintf(tw, "mediator peak RSS\t%.1f MiB\n", float64(r.peakRSS)/1024)
	if r.storeBytes > 0 && r.acked > 0 {
		fmt.Fprintf(tw, "store size\t%.1f MiB (%.0f bytes per item)\n", float64(r.storeBytes)/(1<<20), float64(r.storeBytes)/float64(r.acked))
	}
	_ = tw.Flush()
}

// peakRSS reads VmHWM (kB) of a process; 0 where /proc is not available.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime is the user and system CPU time of process pid so far, from
// /proc/<pid>/stat (in clock ticks of 10 ms).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name (in parentheses): state is the
	// first, utime and stime the 12th and 13th.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// selfCPUTime is this process's user and system CPU time so far.
func selfCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dirSize(dir, prefix string) int64 {
	entries, _ := os.ReadDir(dir)
	var n int64
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
	}
	return n
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the mediator did not become ready within 30 s")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
