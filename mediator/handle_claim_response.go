package mediator

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/rs/zerolog"

	"github.com/cht-openimis/cht-openimis-mediator/mapping"
)

// claimAnswer is the 200 answer to openIMIS. openIMIS counts anything but a
// JSON answer as a failed delivery (docs/upstreams/openimis.md §3.3, trap 6).
type claimAnswer struct {
	Claim  string `json:"claim"`
	Status string `json:"status"`
}

// handleClaimResponse receives a ClaimResponse notification from openIMIS,
// stores its job durably and answers at once.
func (a *api) handleClaimResponse() gin.HandlerFunc {
	return func(c *gin.Context) {
		body, ok := a.readJSONBody(c, maxClaimBody)
		if !ok {
			return
		}
		log := zerolog.Ctx(c.Request.Context())
		claim, err := a.dates().ParseClaimResponse(body)
		if err != nil {
			var fe mapping.FieldErrors
			errors.As(err, &fe)
			log.Warn().Str("problems", err.Error()).Msg("claim response refused")
			a.fail(c, http.StatusBadRequest, "not a usable ClaimResponse", fe...)
			return
		}
		ctx := log.With().Str("claim_uuid", claim.UUID).Logger().WithContext(c.Request.Context())
		inserted, err := a.store.Enqueue(ctx, kindClaim, claimKey(claim.UUID), claimArgs{Claim: claim})
		if err != nil {
			zerolog.Ctx(ctx).Error().Err(err).Msg("store claim")
			a.fail(c, http.StatusServiceUnavailable, "the claim could not be stored; send it again")
			return
		}
		status := "accepted"
		if !inserted {
			status = "duplicate"
		}
		zerolog.Ctx(ctx).Info().Str("status", status).Msg("claim received")
		a.respond(c, http.StatusOK, claimAnswer{Status: status, Claim: claim.UUID})
	}
}
