package fcm

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
)

// loadServiceAccount reads a service-account JSON and checks its private
// key now, so a broken file stops the deliver stage at start instead of
// failing every send. Only a service account is accepted: loading any
// credential type from a file is the risk option.WithCredentialsFile is
// deprecated for. Errors name the file, never its content.
func loadServiceAccount(file, project string, tokenClient *http.Client) (*auth.Credentials, string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", err
	}
	var sa struct {
		Type       string `json:"type"`
		ProjectID  string `json:"project_id"`
		PrivateKey string `json:"private_key"`
	}
	if json.Unmarshal(b, &sa) != nil {
		return nil, "", errors.New("not a JSON file")
	}
	if sa.Type != string(credentials.ServiceAccount) {
		return nil, "", fmt.Errorf("type %q is not %q", sa.Type, credentials.ServiceAccount)
	}
	if err := checkPrivateKey(sa.PrivateKey); err != nil {
		return nil, "", err
	}
	creds, err := credentials.NewCredentialsFromJSON(credentials.ServiceAccount, b,
		&credentials.DetectOptions{Scopes: scopes, Client: tokenClient})
	if err != nil {
		return nil, "", err
	}
	if project == "" {
		project = sa.ProjectID
	}
	if project == "" {
		return nil, "", errors.New("no project id given or in the file")
	}
	return creds, project, nil
}

func checkPrivateKey(p string) error {
	block, _ := pem.Decode([]byte(p))
	if block == nil {
		return errors.New("private_key is not PEM")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return nil
	}
	return errors.New("private_key is neither a PKCS#8 nor a PKCS#1 key")
}
