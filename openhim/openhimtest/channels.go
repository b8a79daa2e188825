package openhimtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// channelRec is a stored channel.
type channelRec struct {
	doc     *jsValue
	urn     string
	created time.Time
}

// Channel is a channel created by POST /mediators/{urn}/channels, as
// returned by Server.Channels.
type Channel struct {
	// Created is the server clock's time of creation.
	Created time.Time
	// Doc is the stored channel decoded into Go values.
	Doc map[string]any
	// DocJSON is the stored channel as JSON: the defaultChannelConfig entry
	// with mongoose's defaults, a new _id, routes with new _ids, and
	// updatedBy naming the user who installed it.
	DocJSON json.RawMessage
	// Name is the channel's name, unique among channels.
	Name string
	// URLPattern is the channel's urlPattern.
	URLPattern string
	// URN is the urn of the mediator whose defaultChannelConfig it came
	// from.
	URN string
}

// Channels returns the channels installed so far, oldest first.
func (s *Server) Channels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Channel, len(s.channels))
	for i, c := range s.channels {
		doc := c.doc.clone()
		ch := Channel{
			Created:    c.created,
			DocJSON:    doc.stringify(),
			Name:       doc.prop("name").toJSString(),
			URLPattern: doc.prop("urlPattern").toJSString(),
			URN:        c.urn,
		}
		ch.Doc, _ = doc.toGo().(map[string]any)
		out[i] = ch
	}
	return out
}

// loadDefaultChannels is POST /mediators/:urn/channels
// (src/api/mediators.js loadDefaultChannels). The body [] installs every
// defaultChannelConfig entry and a list of names installs those; a body
// that is not a JSON array (absent, {}) installs nothing and still answers
// 201, because core reads it as {} and {}.length is undefined. Each
// install inserts a new channel, and channel names are unique, so a second
// install of the same channel fails with 500 (the others are still
// inserted).
func (s *Server) loadDefaultChannels(x *exchange, urn string) *koaResponse {
	if !x.user.admin() {
		return notAdmin(x.user, "removeMediator")
	}
	channels := x.body
	m := s.mediatorByURN(urn)
	if m == nil {
		return textResponse(http.StatusNotFound, errNoMediator.Error())
	}
	fail := func(err string) *koaResponse {
		return textResponse(http.StatusInternalServerError, fmt.Sprintf("Could not load mediator default channel config (urn: %s): %s", urn, err))
	}
	dcc := m.doc.prop("defaultChannelConfig")
	if !dcc.isArray() {
		return fail("TypeError: Cannot read properties of null (reading 'filter')")
	}
	length := channels.prop("length")
	var toSave []*jsValue
	if channels.isNullish() || strictEquals(length, jsNum(0)) {
		toSave = dcc.arr
	} else {
		names := channels.arrayFrom()
		for _, c := range dcc.arr {
			for _, n := range names {
				if strictEquals(n, c.prop("name")) {
					toSave = append(toSave, c)
					break
				}
			}
		}
		if float64(len(toSave)) < length.toNumber() {
			return textResponse(http.StatusBadRequest, fmt.Sprintf("Could not load mediator default channel config, one or more channels in the request body not found in the mediator config (urn: %s)", urn))
		}
	}
	firstErr := ""
	for _, c := range toSave {
		if err := s.saveChannel(c, urn, x.user); err != "" && firstErr == "" {
			firstErr = err
		}
	}
	if firstErr != "" {
		return fail(firstErr)
	}
	return statusResponse(http.StatusCreated)
}

// saveChannel is saveDefaultChannelConfig for one channel: drop the _ids,
// set updatedBy, then new ChannelModelAPI(channel).save(). It returns the
// error as String(err). The caller holds s.mu.
func (s *Server) saveChannel(c *jsValue, urn string, u *user) string {
	ch := c.clone()
	if !ch.isObject() {
		return "TypeError: Cannot read properties of " + ch.toJSString() + " (reading 'routes')"
	}
	ch.obj.del("_id")
	for _, r := range ch.prop("routes").arrayFrom() {
		if r.isObject() {
			r.obj.del("_id")
		}
	}
	by := newObject()
	by.obj.set("id", jsStr(u.id))
	by.obj.set("name", jsStr(u.fullName()))
	ch.obj.set("updatedBy", by)
	var errs docErrors
	doc := castDoc(channelSchema, ch, "", true, &errs)
	if !errs.empty() {
		return "ValidationError: " + errs.validationMessage("Channel")
	}
	name := doc.prop("name").toJSString()
	for _, existing := range s.channels {
		if existing.doc.prop("name").toJSString() == name {
			return fmt.Sprintf(`MongoServerError: E11000 duplicate key error collection: openhim-development.channels index: name_1 dup key: { name: "%s" }`, name)
		}
	}
	doc.obj.set("__v", jsNum(0))
	s.channels = append(s.channels, &channelRec{doc: doc, urn: urn, created: s.now()})
	return ""
}
