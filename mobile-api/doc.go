// Package mobileapi the Gin HTTP API for the patient app and the scoring model.
//
// Not built yet: issue #8 fills this module.
package mobileapi
