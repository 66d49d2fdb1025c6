package cashttp

// ManyRanges is manyRanges for the external tests.
var ManyRanges = manyRanges

// AcceptsZstd is acceptsZstd for the external tests.
var AcceptsZstd = acceptsZstd
