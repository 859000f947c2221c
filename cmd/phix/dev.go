package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"phix/auth/oidc"
	"phix/devnet"
)

func init() {
	register(command{name: "dev", summary: "run the development network on loopback (coordinator, hospital-a, hospital-b)", run: runDev})
}

func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("phix dev", flag.ContinueOnError)
	data := fs.String("data", "./phix-data", "data directory (databases, tokens, dev/endpoints.json)")
	basePort := fs.Int("base-port", devnet.DefaultBasePort, "hospital-a's FHIR port; hospital-b uses the next (busy ports fall back to free ones)")
	quiet := fs.Bool("quiet", false, "do not log requests")
	idp := fs.String("oidc-issuer", "", "an external OpenID provider whose tokens the hospitals also accept (discovery at ISSUER/.well-known/openid-configuration)")
	idpAud := fs.String("oidc-audience", "", "the aud the external provider's tokens carry (default: each hospital's FHIR base URL)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2, err: err}
	}
	var logger *slog.Logger
	if !*quiet {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	opts := devnet.Options{DataDir: *data, BasePort: *basePort, Logger: logger}
	if *idp != "" {
		p := oidc.Provider{Issuer: *idp}
		if *idpAud != "" {
			p.Audience = []string{*idpAud}
		}
		opts.IdPs = append(opts.IdPs, p)
	}
	n, err := devnet.Start(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "phix dev: coordinator %s (mutual TLS, CA in %s)\n", n.Coordinator, *data+"/dev/ca.pem")
	for _, h := range n.Hospitals {
		fmt.Fprintf(os.Stderr, "phix dev: %s FHIR %s gateway %s (token in %s, auditor token in %s, audit log %s)\n",
			h.ID, h.FHIR, h.GatewayURL, *data+"/dev/"+h.ID+".token", *data+"/dev/"+h.ID+".auditor.token", h.AuditDB)
	}
	if n.Demo.Patient != "" {
		fmt.Fprintf(os.Stderr, "phix dev: demo: %s of %s, consent %s for %s\n", n.Demo.Patient, n.Demo.From, n.Demo.Consent, n.Demo.To)
	}
	fmt.Fprintf(os.Stderr, "phix dev: endpoints in %s; Ctrl-C stops\n", n.EndpointsFile)
	<-ctx.Done()
	err = n.Wait()
	fmt.Fprintln(os.Stderr, "phix dev: stopped")
	return err
}
