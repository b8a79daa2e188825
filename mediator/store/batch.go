package store

import (
	"context"
	"sync"
	"time"

	"github.com/riverqueue/river"
)

// maxWriteBatch bounds the requests one transaction takes.
const maxWriteBatch = 256

// commitDelay is how long a batch waits for more requests before it
// commits, as PostgreSQL's commit_delay does. Each commit costs a flush to
// the disk, and a flush costs a millisecond or more and much of it CPU in
// the kernel on a virtual disk: without the wait, dozens of concurrent
// workers and senders made a commit of one or two requests each, two
// flushes a claim (BENCHMARKS.md, "a commit delay"). A request alone waits
// this long more for its answer; under load, answers come sooner.
const commitDelay = 2 * time.Millisecond

// writeOp is what a writeRequest records.
type writeOp int

const (
	// opIntake records the receipt (kind, key) and, when new, inserts the
	// job args.
	opIntake writeOp = iota
	// opDelivery records the delivery of (kind, key) with its result.
	opDelivery
	// opPerson records the person (result) of an insuree (key).
	opPerson
)

// String names the write in errors.
func (op writeOp) String() string {
	switch op {
	case opDelivery:
		return "record delivery"
	case opPerson:
		return "record person"
	}
	return "record receipt"
}

// writeRequest is one write the batcher commits with others.
type writeRequest struct {
	args   river.JobArgs
	digest string
	done   chan writeResult
	kind   string
	key    string
	result string
	op     writeOp
}

// writeResult is the outcome of one request: for an intake whose receipt
// existed, previous is the digest recorded in it.
type writeResult struct {
	err      error
	inserted bool
	previous string
}

// batcher is the group commit both stores share: requests that arrive while
// a commit is under way, or within commitDelay of the first, share one
// commit. One transaction
// for many requests is what lets dozens of concurrent senders be
// acknowledged quickly (SQLite has one writer; on PostgreSQL it saves a
// round trip and a flush per request). Each request is still answered only
// after the commit that holds it.
type batcher struct {
	writes    chan writeRequest
	closed    chan struct{}
	closeOnce sync.Once
}

func newBatcher() batcher {
	return batcher{writes: make(chan writeRequest), closed: make(chan struct{})}
}

// write hands a request to the batcher and waits for its commit.
func (b *batcher) write(ctx context.Context, req writeRequest) (writeResult, error) {
	req.done = make(chan writeResult, 1)
	select {
	case b.writes <- req:
	case <-ctx.Done():
		return writeResult{}, ctx.Err()
	case <-b.closed:
		return writeResult{}, errClosed
	}
	select {
	case res := <-req.done:
		return res, res.err
	case <-ctx.Done():
		// The batch may still commit: a repeated intake is then a
		// duplicate, a repeated delivery record the same record.
		return writeResult{}, ctx.Err()
	}
}

// run commits the waiting requests together with commit until the store
// closes. commit answers one result per request, in order, or an error for
// all of them.
func (b *batcher) run(commit func([]writeRequest) ([]writeResult, error)) {
	for {
		var batch []writeRequest
		select {
		case req := <-b.writes:
			batch = append(batch, req)
		case <-b.closed:
			return
		}
		delay := time.NewTimer(commitDelay)
	collect:
		for len(batch) < maxWriteBatch {
			select {
			case req := <-b.writes:
				batch = append(batch, req)
			case <-delay.C:
				break collect
			case <-b.closed:
				break collect
			}
		}
		delay.Stop()
		results, err := commit(batch)
		for i, req := range batch {
			if err != nil {
				req.done <- writeResult{err: err}
				continue
			}
			req.done <- results[i]
		}
	}
}

// close stops run and refuses later writes.
func (b *batcher) close() { b.closeOnce.Do(func() { close(b.closed) }) }
