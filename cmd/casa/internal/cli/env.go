package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
)

// Environment variables read by casa. A flag given on the command line
// wins over its variable.
const (
	EnvDir          = "CASA_DIR"           // -dir
	EnvS3Bucket     = "CASA_S3_BUCKET"     // -s3-bucket
	EnvS3Endpoint   = "CASA_S3_ENDPOINT"   // -s3-endpoint
	EnvS3Region     = "CASA_S3_REGION"     // -s3-region
	EnvS3PathStyle  = "CASA_S3_PATH_STYLE" // -s3-path-style (true/false)
	EnvS3Prefix     = "CASA_S3_PREFIX"     // -s3-prefix
	EnvDB           = "CASA_DB"            // -db
	EnvSignKey      = "CASA_SIGN_KEY"      // serve -sign-key
	envDescriptions = "" +
		"  CASA_DIR            -dir: the store is this local directory (fsstore)\n" +
		"  CASA_S3_BUCKET      -s3-bucket: the store is this S3 bucket\n" +
		"  CASA_S3_ENDPOINT    -s3-endpoint: endpoint URL of an S3-compatible service\n" +
		"  CASA_S3_REGION      -s3-region: region (default: the AWS config, else us-east-1)\n" +
		"  CASA_S3_PATH_STYLE  -s3-path-style: address buckets by path (true or false)\n" +
		"  CASA_S3_PREFIX      -s3-prefix: every key of the store starts with this prefix\n" +
		"  CASA_DB             -db: the database of migrate, cleanup and gc\n" +
		"  CASA_SIGN_KEY       serve -sign-key: HMAC key that blob URLs must be signed with\n" +
		"  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ...: the standard AWS\n" +
		"                      credential chain (environment, shared files, instance role)\n"
)

// env is one run of one command: the process's streams and environment,
// and the shared flags the command registered.
type env struct {
	IO
	name string // the command's name
	json bool

	store *storeFlags // nil unless the command takes a store
	db    *dbFlags    // nil unless the command takes a database
	// fromEnv maps flag names to the variables that supply them when the
	// flag is not given.
	fromEnv map[string]string
}

// bindEnv makes the variable supply flag name's value when the command
// line does not give it.
func (e *env) bindEnv(name, variable string) {
	if e.fromEnv == nil {
		e.fromEnv = make(map[string]string)
	}
	e.fromEnv[name] = variable
}

// finish applies the environment to the flags not given, after parsing.
func (e *env) finish(fs *flag.FlagSet) error {
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, variable := range e.fromEnv {
		v := e.Getenv(variable)
		if given[name] || v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return usagef("%s=%q: %v", variable, truncate(v, 80), err)
		}
	}
	return nil
}

// printJSON writes v as indented JSON on standard output.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printf writes text output on standard output.
func (e *env) printf(format string, args ...any) {
	fmt.Fprintf(e.Stdout, format, args...)
}

// notef writes a note for the operator on standard error.
func (e *env) notef(format string, args ...any) {
	fmt.Fprintf(e.Stderr, "casa %s: %s\n", e.name, fmt.Sprintf(format, args...))
}

// boolValue is a flag.Value for a bool that the environment can set with
// strconv.ParseBool's spellings.
type boolValue struct{ p *bool }

func (b boolValue) String() string {
	if b.p == nil {
		return "false"
	}
	return strconv.FormatBool(*b.p)
}

func (b boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	*b.p = v
	return nil
}

func (b boolValue) IsBoolFlag() bool { return true }
