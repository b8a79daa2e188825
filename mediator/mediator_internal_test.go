package mediator

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDeliverableEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		endpoint string
		want     bool
	}{
		{"https://him.example.org:5001/mediator/claim-response", true},
		{"http://localhost:6000/mediator/claim-response", true},
		{"http://127.0.0.1:6000/mediator/claim-response", true},
		{"http://[::1]:6000/mediator/claim-response", true},
		{"http://mediator.local./x", true},
		{"http://openhim-core:5001/mediator/claim-response", false},
		{"http://mediator:6000/x", false},
		{"http://host.x1/x", false},
		{"::not a url", false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, deliverableEndpoint(tt.endpoint), tt.endpoint)
	}
}
