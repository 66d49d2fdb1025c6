package cashttp

// ManyRanges is manyRanges for the external tests.
var ManyRanges = manyRanges
