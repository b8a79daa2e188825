package mapping

import (
	"strings"

	"github.com/cht-openimis/cht-openimis-mediator/cht"
	"github.com/cht-openimis/cht-openimis-mediator/openimis"
)

// Person builds the CHT person for an insuree under the place placeID. p may
// be nil when the openIMIS user may not read insurees; the person then gets a
// neutral name the health worker can correct.
func Person(insureeUUID string, p *openimis.Patient, placeID string) cht.Person {
	person := cht.Person{
		ID: PersonID(insureeUUID),
		// As received: the health worker's feedback carries it back to
		// openIMIS as the Communication's subject, which openIMIS matches as
		// stored (docs/upstreams/openimis.md trap 15). The CHT's contact search ignores case.
		OpenIMISID: insureeUUID,
		Place:      placeID,
		Type:       "person",
	}
	if p != nil {
		person.Name = patientName(p)
		switch p.Gender {
		case "male", "female":
			person.Sex = p.Gender
		}
		person.DateOfBirth = p.BirthDate
		for _, t := range p.Telecom {
			if t.System == "phone" && t.Value != "" {
				person.Phone = t.Value
				break
			}
		}
	}
	if person.Name == "" {
		person.Name = "openIMIS insuree " + insureeCode(p, insureeUUID)
	}
	return person
}

// patientName prefers the usual name: given names, then family name.
func patientName(p *openimis.Patient) string {
	var best *openimis.HumanName
	for i := range p.Name {
		if best == nil || p.Name[i].Use == "usual" && best.Use != "usual" {
			best = &p.Name[i]
		}
	}
	if best == nil {
		return ""
	}
	if best.Text != "" {
		return strings.TrimSpace(best.Text)
	}
	parts := append([]string{}, best.Given...)
	parts = append(parts, best.Family)
	return strings.Join(strings.Fields(strings.Join(parts, " ")), " ")
}

// insureeCode is the insurance number (identifier type Code), else the UUID.
func insureeCode(p *openimis.Patient, insureeUUID string) string {
	if p != nil {
		for _, id := range p.Identifier {
			if id.Type.Code() == "Code" && id.Value != "" {
				return id.Value
			}
		}
	}
	return insureeUUID
}
