package fastjson_test

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cht-openimis/cht-openimis-mediator/internal/fastjson"
)

// doc has the shapes the clients decode: strings, lists, nested objects,
// numbers, booleans, raw and untyped values.
type doc struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id,omitempty"`
	Count        int             `json:"count"`
	Ratio        float64         `json:"ratio"`
	OK           bool            `json:"ok"`
	Names        []name          `json:"name,omitempty"`
	Data         []string        `json:"data"`
	Cursor       *string         `json:"cursor"`
	Raw          json.RawMessage `json:"raw,omitempty"`
	Any          any             `json:"any,omitempty"`
	Meta         map[string]int  `json:"meta,omitempty"`
}

type name struct {
	Family string   `json:"family"`
	Given  []string `json:"given"`
}

func decodeBoth(t *testing.T, data []byte) (got, want doc, gotErr, wantErr error) {
	t.Helper()
	gotErr = fastjson.Unmarshal(data, &got)
	wantErr = json.Unmarshal(data, &want)
	return
}

func TestUnmarshal_AsEncodingJSON(t *testing.T) {
	patient, err := os.ReadFile("../../testdata/openimis/test_patient.json")
	require.NoError(t, err)
	for _, data := range [][]byte{
		patient,
		[]byte(`{"resourceType":"Patient","name":[{"family":"Shah","given":["Ram"]}],"count":3,"ok":true}`),
		[]byte(`{"data":["a","b"],"cursor":null}`),
		[]byte(`{"name":[{"family":"\u0936\u093e\u0939"}]}`),
		[]byte(`{"id":"\ud83d\ude00"}`),           // a surrogate pair: encoding/json decodes it
		[]byte(`{"id":"\udc00"}`),                 // a lone surrogate: U+FFFD
		[]byte("{\"id\":\"\xff\"}"),               // not UTF-8: U+FFFD
		[]byte(`{"count":"3"}`),                   // wrong type: an error, with the rest decoded
		[]byte(`{"count":1e2}`),                   // not an integer
		[]byte(`{"resourceType":"Patient",}`),     // a trailing comma
		[]byte(`{"resourceType":"Patient"} junk`), // trailing data
		[]byte(`{"RESOURCETYPE":"Patient","Id":"x"}`),
		[]byte(`{"reſourceType":"Patient"}`),        // ſ folds to s in encoding/json
		[]byte(`{"re\u017fourceType":"Patient"}`),   // escaped
		[]byte(`{"na\u017Fe":[{"family":"Shah"}]}`), // upper-case hex
		[]byte("{\"o\u212a\":true}"),                // the Kelvin sign folds to k
		[]byte(`{"o\u212A":true}`),                  // escaped
	} {
		got, want, gotErr, wantErr := decodeBoth(t, data)
		require.Equal(t, wantErr == nil, gotErr == nil, "%s: %v / %v", data, gotErr, wantErr)
		if wantErr != nil {
			require.Equal(t, wantErr.Error(), gotErr.Error(), "%s", data)
		}
		require.Equal(t, want, got, "%s", data)
	}
}

func TestUnmarshal_NotAPointer(t *testing.T) {
	var d doc
	require.Error(t, fastjson.Unmarshal([]byte(`{}`), d))
	require.Error(t, fastjson.Unmarshal([]byte(`{}`), nil))
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Patient","name":[{"family":"Shah","given":["Ram"]}]}`))
	f.Add([]byte(`{"data":["a"],"cursor":"c","raw":{"x":[1,2]},"any":[true,null,1.5],"meta":{"a":1}}`))
	f.Add([]byte(`{"id":"\ud83d\ude00","ratio":-0.5e3}`))
	f.Add([]byte("{\"\\\x01\":1}"))
	f.Add([]byte(`{"reſourceType":"Patient","\u212aind":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, want, gotErr, wantErr := decodeBoth(t, data)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: fastjson %v, encoding/json %v", data, gotErr, wantErr)
		}
		if wantErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fastjson %+v, encoding/json %+v", data, got, want)
		}
	})
}
