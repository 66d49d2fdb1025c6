// Package testutil holds test servers, fault injection and fixtures shared by casa's tests.
package testutil
