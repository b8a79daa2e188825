package openhimtest

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// setKoaResponse is core's setKoaResponse (src/middleware/router.js) for
// the primary route's response object: status (a string is parsed with
// parseInt when Number() can read it), body (buf, a Buffer, when not nil),
// then the headers with X-OpenHIM-TransactionID added. It returns the
// exception core would throw, after which the client gets 500.
func setKoaResponse(k *koaResponse, response *jsValue, txID string, acceptsHTML bool, buf []byte) *jsError {
	if response.isNullish() {
		return typeError("Cannot read properties of %s (reading 'status')", response.toJSString())
	}
	st := response.prop("status")
	if st.isString() && !math.IsNaN(jsStringToNumber(st.s)) {
		st = jsNum(jsParseInt(st.s))
	}
	if err := k.setStatusValue(st); err != nil {
		return err
	}
	if buf != nil {
		k.setBuffer(buf)
	} else {
		k.setBody(response.prop("body").clone())
	}
	headers := response.prop("headers")
	var keys []string
	if !headers.isNullish() {
		switch headers.kind {
		case jsString, jsNumber, jsBool:
			return typeError("Cannot create property 'X-OpenHIM-TransactionID' on %s '%s'", headers.typeOf(), headers.toJSString())
		}
		headers = headers.clone()
		keys = headers.ownKeys()
		if headers.isObject() {
			headers.obj.set("X-OpenHIM-TransactionID", jsStr(txID))
			keys = headers.ownKeys()
		} else {
			keys = append(keys, "X-OpenHIM-TransactionID")
		}
	}
	for _, key := range keys {
		value := headers.prop(key)
		if key == "X-OpenHIM-TransactionID" {
			value = jsStr(txID)
		}
		switch strings.ToLower(key) {
		case "set-cookie":
			setCookies(k, value)
		case "location":
			if st.n >= 300 && st.n < 400 {
				k.redirect(value.toJSString(), acceptsHTML)
			} else if err := k.set(key, value); err != nil {
				return err
			}
		case "content-type":
			if value.isString() {
				k.setType(value.s)
			} else {
				k.header.Del("Content-Type")
			}
		case "content-length", "content-encoding", "transfer-encoding":
		default:
			if err := k.set(key, value); err != nil {
				return err
			}
		}
	}
	return nil
}

// jsParseInt is parseInt(s, 10).
func jsParseInt(s string) float64 {
	s = strings.TrimLeftFunc(s, isJSWhitespace)
	sign := 1.0
	if s != "" && (s[0] == '+' || s[0] == '-') {
		if s[0] == '-' {
			sign = -1
		}
		s = s[1:]
	}
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	if end == 0 {
		return math.NaN()
	}
	f, _ := strconv.ParseFloat(s[:end], 64)
	return sign * f
}

// setCookies approximates core's setCookiesOnContext: for each cookie
// string of an array, every name=value pair that is not an attribute
// becomes a cookie (expires and max-age kept as an expiry; path, domain,
// secure and httponly dropped, as core clears them). A string value sets
// nothing useful in core and nothing here.
func setCookies(k *koaResponse, v *jsValue) {
	if !v.isArray() {
		return
	}
	for _, e := range v.arr {
		expires := ""
		var pairs []string
		for _, part := range strings.Split(e.toJSString(), ";") {
			name, val, ok := strings.Cut(part, "=")
			if !ok {
				continue
			}
			name, val = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(val), `"`)
			switch strings.ToLower(name) {
			case "max-age":
				// Core passes max-age (seconds) as the cookies module's
				// maxage, which is in milliseconds.
				if n := jsParseInt(val); !math.IsNaN(n) {
					expires = time.Now().Add(time.Duration(n) * time.Millisecond).UTC().Format(http.TimeFormat)
				}
			case "expires":
				if t, _, ok := parseJSDate(val); ok {
					expires = t.UTC().Format(http.TimeFormat)
				}
			case "path", "domain", "secure", "signed", "overwrite", "httponly":
			default:
				pairs = append(pairs, name+"="+val)
			}
		}
		for _, p := range pairs {
			if expires != "" {
				p += "; expires=" + expires
			}
			k.header.Add("Set-Cookie", p)
		}
	}
}

// acceptsHTML is ctx.accepts('html') for the client's Accept header: true
// without one; otherwise the most specific matching range must have q > 0.
func acceptsHTML(values []string) bool {
	if len(values) == 0 {
		return true
	}
	best, bestQ := -1, 0.0
	for _, r := range strings.Split(strings.Join(values, ","), ",") {
		parts := strings.Split(r, ";")
		mt := strings.ToLower(strings.TrimSpace(parts[0]))
		q := 1.0
		for _, p := range parts[1:] {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		spec := -1
		switch mt {
		case "*/*":
			spec = 0
		case "text/*":
			spec = 1
		case "text/html":
			spec = 2
		}
		if spec > best || (spec == best && spec >= 0 && q > bestQ) {
			best, bestQ = spec, q
		}
	}
	return best >= 0 && bestQ > 0
}

// transactionStatus is the status setFinalStatus stores: the envelope's
// status when it has one (stored without validation; one that cannot be
// cast to a string makes the update fail and leaves "Processing"), else
// derived from the client's status.
func transactionStatus(envelope *jsValue, status int) string {
	if st := envelope.prop("status"); !st.isNullish() {
		if v, ok := castPrimitive(kString, st); ok {
			return v.s
		}
		return TransactionProcessing
	}
	switch {
	case status >= 500 && status <= 599:
		return TransactionFailed
	case status >= 200 && status <= 299:
		return TransactionSuccessful
	}
	return TransactionCompleted
}

// checkEnvelope lists what is wrong with an envelope, by the contract's
// rules (§4.2, traps 12 to 14), each with what core then does.
func checkEnvelope(v *jsValue) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if !v.isObject() {
		add("the envelope is not a JSON object: the client gets 500 %q", internalErrorBody)
		return out
	}
	if urn := v.prop("x-mediator-urn"); !urn.isString() || urn.s == "" {
		add("x-mediator-urn is missing or not a string: core records no mediator for the transaction")
	}
	if st := v.prop("status"); !st.isUndefined() {
		if !st.isString() || !slices.Contains(transactionStatuses, st.s) {
			add("status %s is not one of %s: core stores it unchecked", st.stringify(), strings.Join(transactionStatuses, ", "))
		}
	}
	checkResponse(v.prop("response"), add)
	if orchs := v.prop("orchestrations"); !orchs.isUndefined() {
		if !orchs.isArray() {
			add("orchestrations is not an array: core cannot store the response metadata")
		} else {
			for i, o := range orchs.arr {
				checkOrchestration(i, o, add)
			}
		}
	}
	if e := v.prop("error"); !e.isNullish() {
		checkErrorDetails("error", e, add)
	}
	return out
}

func checkResponse(resp *jsValue, add func(string, ...any)) {
	if !resp.isObject() {
		add("response is missing or not an object: the client gets 500 %q", internalErrorBody)
		return
	}
	st := resp.prop("status")
	switch {
	case st.isNullish():
		add("response.status is missing: the client gets 500 %q", internalErrorBody)
	case st.isString():
		if math.IsNaN(jsStringToNumber(st.s)) {
			add("response.status %q is not numeric: the client gets 500 %q", st.s, internalErrorBody)
			break
		}
		n := jsParseInt(st.s)
		if math.IsNaN(n) || n < 100 || n > 999 {
			add("response.status %q is not an HTTP status: the client gets 500 %q", st.s, internalErrorBody)
		} else if jsNumberString(n) != st.s {
			add("response.status %q is read as %s", st.s, jsNumberString(n))
		}
	case st.kind != jsNumber || st.n != math.Trunc(st.n) || st.n < 100 || st.n > 999:
		add("response.status %s is not an integer HTTP status: the client gets 500 %q", st.stringify(), internalErrorBody)
	}
	switch body := resp.prop("body"); {
	case body.isNullish():
		add("response.body is missing or null: the client gets 204 No Content")
	case !body.isString():
		add("response.body is not a string: core sends it to the client JSON-encoded as application/json")
	}
	if h := resp.prop("headers"); !h.isUndefined() {
		switch {
		case h.kind == jsNull:
		case !h.isObject():
			add("response.headers is not an object: the client gets 500 %q", internalErrorBody)
		default:
			for _, k := range h.ownKeys() {
				hv := h.prop(k)
				if hv.isObject() {
					add("response.headers[%q] is an object: the client gets %q", k, hv.toJSString())
				}
				if strings.EqualFold(k, "set-cookie") && !hv.isArray() {
					add("response.headers[%q] is not an array: core sets no cookie", k)
				}
			}
		}
	}
	if ts := resp.prop("timestamp"); !ts.isUndefined() {
		if _, ok := castDate(ts); !ok {
			add("response.timestamp %s is not a date: core cannot store the response metadata", ts.stringify())
		}
	}
}

func checkOrchestration(i int, o *jsValue, add func(string, ...any)) {
	p := fmt.Sprintf("orchestrations[%d]", i)
	if !o.isObject() {
		add("%s is not an object: core cannot store the response metadata", p)
		return
	}
	checkString := func(path string, v *jsValue) {
		if _, ok := castPrimitive(kString, v); !ok {
			add("%s is not a string: core cannot store the response metadata", path)
		}
	}
	name := o.prop("name")
	if name.isNullish() || (name.isString() && name.s == "") {
		add("%s.name is missing: core cannot store the response metadata", p)
	} else {
		checkString(p+".name", name)
	}
	checkString(p+".group", o.prop("group"))
	if req := o.prop("request"); !req.isNullish() {
		if !req.isObject() {
			add("%s.request is not an object: core cannot store the response metadata", p)
		} else {
			for _, f := range []string{"host", "port", "path", "querystring", "body", "method"} {
				checkString(p+".request."+f, req.prop(f))
			}
			ts := req.prop("timestamp")
			if d, ok := castDate(ts); !ok {
				add("%s.request.timestamp %s is not a date: core cannot store the response metadata", p, ts.stringify())
			} else if d.isNullish() {
				add("%s.request.timestamp is missing: core cannot store the response metadata", p)
			}
		}
	}
	if res := o.prop("response"); !res.isNullish() {
		if !res.isObject() {
			add("%s.response is not an object: core cannot store the response metadata", p)
		} else {
			if _, ok := castPrimitive(kNumber, res.prop("status")); !ok {
				add("%s.response.status is not a number: core cannot store the response metadata", p)
			}
			checkString(p+".response.body", res.prop("body"))
			if ts := res.prop("timestamp"); !ts.isUndefined() {
				if _, ok := castDate(ts); !ok {
					add("%s.response.timestamp %s is not a date: core cannot store the response metadata", p, ts.stringify())
				}
			}
		}
	}
	if e := o.prop("error"); !e.isNullish() {
		checkErrorDetails(p+".error", e, add)
	}
}

func checkErrorDetails(p string, e *jsValue, add func(string, ...any)) {
	if !e.isObject() {
		add("%s is not an object {message, stack}: core cannot store it", p)
		return
	}
	for _, f := range []string{"message", "stack"} {
		if _, ok := castPrimitive(kString, e.prop(f)); !ok {
			add("%s.%s is not a string: core cannot store it", p, f)
		}
	}
}

// parseEnvelope reads an envelope object into the typed view, leaving
// fields of the wrong type empty.
func parseEnvelope(v *jsValue) Envelope {
	env := Envelope{
		Raw:    v.stringify(),
		Status: primitiveString(v.prop("status")),
		URN:    primitiveString(v.prop("x-mediator-urn")),
	}
	env.Properties, _ = v.prop("properties").toGo().(map[string]any)
	env.Error = parseErrorDetails(v.prop("error"))
	if r := v.prop("response"); r.isObject() {
		env.Response = EnvelopeResponse{
			Timestamp: primitiveString(r.prop("timestamp")),
		}
		if b := r.prop("body"); b.isString() {
			env.Response.Body = b.s
		}
		env.Response.Headers, _ = r.prop("headers").toGo().(map[string]any)
		st := r.prop("status")
		if st.isString() && !math.IsNaN(jsStringToNumber(st.s)) {
			st = jsNum(jsParseInt(st.s))
		}
		if st.kind == jsNumber && st.n == math.Trunc(st.n) && st.n >= 100 && st.n <= 999 {
			env.Response.Status = int(st.n)
		}
	}
	for _, o := range v.prop("orchestrations").arrayFrom() {
		if !o.isObject() {
			continue
		}
		orch := Orchestration{
			Error: parseErrorDetails(o.prop("error")),
			Group: primitiveString(o.prop("group")),
			Name:  primitiveString(o.prop("name")),
		}
		if r := o.prop("request"); r.isObject() {
			orch.Request = &OrchestrationRequest{
				Body:        primitiveString(r.prop("body")),
				Host:        primitiveString(r.prop("host")),
				Method:      primitiveString(r.prop("method")),
				Path:        primitiveString(r.prop("path")),
				Port:        primitiveString(r.prop("port")),
				Querystring: primitiveString(r.prop("querystring")),
				Timestamp:   primitiveString(r.prop("timestamp")),
			}
			orch.Request.Headers, _ = r.prop("headers").toGo().(map[string]any)
		}
		if r := o.prop("response"); r.isObject() {
			orch.Response = &OrchestrationResponse{
				Body:      primitiveString(r.prop("body")),
				Timestamp: primitiveString(r.prop("timestamp")),
			}
			orch.Response.Headers, _ = r.prop("headers").toGo().(map[string]any)
			if st, ok := castPrimitive(kNumber, r.prop("status")); ok && st.kind == jsNumber {
				orch.Response.Status = int(st.n)
			}
		}
		env.Orchestrations = append(env.Orchestrations, orch)
	}
	return env
}

func parseErrorDetails(e *jsValue) *EnvelopeError {
	if !e.isObject() {
		return nil
	}
	return &EnvelopeError{Message: primitiveString(e.prop("message")), Stack: primitiveString(e.prop("stack"))}
}

// primitiveString is String(v) for strings, numbers and booleans, and ""
// for anything else.
func primitiveString(v *jsValue) string {
	switch v.kind {
	case jsString, jsNumber, jsBool:
		return v.toJSString()
	}
	return ""
}
