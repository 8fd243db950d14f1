/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * ssh-auth.c - who is at each end: the server's host key checked against
 * the revoked keys (RevokedHostKeys, @revoked in known_hosts) and
 * known_hosts (StrictHostKeyChecking deciding about a new one), then our
 * public keys offered, never a passphrase asked for. Apart because these
 * are the checks that keep the stream from the wrong host.
 *
 * @cert-authority lines are skipped, by libssh and here: libssh 0.10
 * neither asks for nor verifies host certificates, so a host known only
 * through a CA is an unknown host, as it is to ssh(1) when the server
 * offers a plain key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>

#include "mig-ssh.h"

/* libssh's default would prompt on stdin for a key's passphrase: never. */
int migssh_no_passphrase(const char *prompt, char *buf, size_t len, int echo,
			 int verify, void *userdata)
{
	(void)prompt, (void)buf, (void)len, (void)echo, (void)verify;
	(void)userdata;
	return -1;
}

/* "ED25519", as ssh(1) names key types in its messages */
static const char *key_type_name(ssh_key k)
{
	switch (ssh_key_type(k)) {
	case SSH_KEYTYPE_ED25519: return "ED25519";
	case SSH_KEYTYPE_RSA: return "RSA";
	case SSH_KEYTYPE_ECDSA_P256:
	case SSH_KEYTYPE_ECDSA_P384:
	case SSH_KEYTYPE_ECDSA_P521: return "ECDSA";
	default: return ssh_key_type_to_char(ssh_key_type(k));
	}
}

/* The server's key, as messages name it */
struct hostkey {
	ssh_key key;
	char *fp;         /* "SHA256:..." */
	char entry[300];  /* "[host]:port", as known_hosts names it */
	char *known;      /* the user's known hosts file */
	char *global;     /* the global one */
};

/* KRL files start with this (OpenSSH's krl.h, KRL_MAGIC) */
static const char krl_magic[8] = "SSHKRL\n";

/* One line of a RevokedHostKeys file, "TYPE BASE64 [comment]": true if it
 * is k. Lines that are no key are skipped, as ssh(1) does. */
static bool revoked_line_is(const char *line, ssh_key k)
{
	char type[64], b64[16384];
	ssh_key r = NULL;
	bool same;

	if (sscanf(line, " %63s %16383s", type, b64) != 2 || type[0] == '#' ||
	    ssh_key_type_from_name(type) == SSH_KEYTYPE_UNKNOWN ||
	    ssh_pki_import_pubkey_base64(b64, ssh_key_type_from_name(type), &r) < 0)
		return false;
	same = ssh_key_cmp(r, k, SSH_KEY_CMP_PUBLIC) == 0;
	ssh_key_free(r);
	return same;
}

/* RevokedHostKeys: a list of public keys. A KRL, or a file that cannot be
 * read, refuses the connection (as ssh(1) refuses on a file it cannot
 * read): a revocation that is not applied must not look applied. */
static int check_revoked_file(const struct hostkey *h, const char *path)
{
	FILE *f = fopen(path, "re");
	char magic[sizeof krl_magic], *line = NULL;
	size_t cap = 0;
	bool hit = false;

	if (!f) {
		migssh_say("host key verification failed: cannot check the "
			"host key %s %s against the revoked keys file %s: %s",
			key_type_name(h->key), h->fp, path, strerror(errno));
		return -1;
	}
	if (fread(magic, 1, sizeof magic, f) == sizeof magic &&
	    !memcmp(magic, krl_magic, sizeof magic)) {
		migssh_say("host key verification failed: the revoked keys "
			"file %s is a key revocation list (KRL), which mig-ssh "
			"cannot read: give RevokedHostKeys a list of public keys",
			path);
		fclose(f);
		return -1;
	}
	rewind(f);
	while (!hit && getline(&line, &cap, f) > 0)
		hit = revoked_line_is(line, h->key);
	free(line);
	fclose(f);
	if (hit)
		migssh_say("host key verification failed: host key %s %s "
			"revoked by file %s", key_type_name(h->key), h->fp, path);
	return hit ? -1 : 0;
}

/* A known_hosts line "@revoked PATTERNS TYPE BASE64": true if it names
 * this host and its key. libssh itself skips every @ line; its parser
 * matches the patterns (wildcards, hashed names) once the marker is off. */
static bool marked_revoked(const char *line, const struct hostkey *h)
{
	struct ssh_knownhosts_entry *e = NULL;
	char rest[16384];
	bool same;

	line += strspn(line, " \t");
	if (strncmp(line, "@revoked", 8) != 0 || (line[8] != ' ' && line[8] != '\t'))
		return false;
	snprintf(rest, sizeof rest, "%s", line + 9 + strspn(line + 9, " \t"));
	rest[strcspn(rest, "\r\n")] = '\0';
	if (ssh_known_hosts_parse_line(h->entry, rest, &e) != SSH_OK) {
		ssh_knownhosts_entry_free(e);
		return false;
	}
	same = ssh_key_cmp(e->publickey, h->key, SSH_KEY_CMP_PUBLIC) == 0;
	ssh_knownhosts_entry_free(e);
	return same;
}

/* Refuse a key marked @revoked in a known hosts file, with ssh(1)'s
 * warning. A missing file holds no marker.
 *
 * The warnings here are ssh(1)'s banners, word for word, and so not in
 * mig_warn's "mig-ssh: " form; each is one fprintf on unbuffered stderr,
 * which glibc writes at once. The refusal follows as a message of ours. */
static int check_revoked_marker(const struct hostkey *h, const char *path)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	bool hit = false;

	if (!path || !(f = fopen(path, "re")))
		return 0;
	while (!hit && getline(&line, &cap, f) > 0)
		hit = marked_revoked(line, h);
	free(line);
	fclose(f);
	if (!hit)
		return 0;
	fprintf(stderr,
		"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
		"@       WARNING: REVOKED HOST KEY DETECTED!               @\n"
		"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
		"The %s host key for %s is marked as revoked.\n"
		"This could mean that a stolen key is being used to\n"
		"impersonate this host.\n",
		key_type_name(h->key), h->entry);
	migssh_say("host key verification failed: the %s host key for %s "
		"was revoked (@revoked in %s; %s key %s), refusing to connect",
		key_type_name(h->key), h->entry, path, key_type_name(h->key), h->fp);
	return -1;
}

static void warn_changed(const struct hostkey *h)
{
	fprintf(stderr,
		"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
		"@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
		"@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
		"IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n"
		"Someone could be eavesdropping on you right now "
		"(man-in-the-middle attack)!\n"
		"It is also possible that a host key has just been changed.\n"
		"The fingerprint for the %s key sent by the remote host is\n"
		"%s.\n"
		"Please contact your system administrator.\n"
		"Add correct host key in %s to get rid of this message.\n",
		key_type_name(h->key), h->fp, h->known);
	migssh_say("host key verification failed: the host key of %s "
		"has changed (%s key %s), refusing to connect",
		h->entry, key_type_name(h->key), h->fp);
}

/* Not in known_hosts: StrictHostKeyChecking decides. */
static int accept_new(ssh_session s, const struct cmdline *c,
		      const struct hostkey *h)
{
	if (c->strict == STRICT_YES) {
		migssh_say("host key verification failed: no host key is "
			"known for %s and StrictHostKeyChecking is yes "
			"(%s key %s)", h->entry, key_type_name(h->key), h->fp);
		return -1;
	}
	if (ssh_session_update_known_hosts(s) < 0) {
		migssh_say("host key verification failed: cannot add the "
			"key of %s to %s: %s", h->entry, h->known,
			ssh_get_error(s));
		return -1;
	}
	if (!c->quiet)
		migssh_say("warning: permanently added %s (%s key %s) to "
			"%s", h->entry, key_type_name(h->key), h->fp, h->known);
	return 0;
}

/* The server's key, its fingerprint and where it is looked up. */
static int read_hostkey(ssh_session s, const struct cmdline *c,
			struct hostkey *h)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	unsigned int port = 22;
	char *host = NULL;

	if (ssh_get_server_publickey(s, &h->key) < 0 ||
	    ssh_get_publickey_hash(h->key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) < 0 ||
	    !(h->fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen))) {
		migssh_say("host key verification failed: cannot read the "
			"server's key: %s", ssh_get_error(s));
		if (hash)
			ssh_clean_pubkey_hash(&hash);
		return -1;
	}
	ssh_clean_pubkey_hash(&hash);
	ssh_options_get_port(s, &port);
	ssh_options_get(s, SSH_OPTIONS_HOST, &host);
	ssh_options_get(s, SSH_OPTIONS_KNOWNHOSTS, &h->known);
	ssh_options_get(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, &h->global);
	/* as libssh and ssh(1) name the host in known_hosts */
	if (port == 22)
		snprintf(h->entry, sizeof h->entry, "%s", host ? host : c->host);
	else
		snprintf(h->entry, sizeof h->entry, "[%s]:%u", host ? host : c->host, port);
	free(host);
	if (!h->known && !(h->known = strdup("~/.ssh/known_hosts"))) {
		migssh_say("out of memory");
		return -1;
	}
	return 0;
}

/* known_hosts' verdict on a key that is not revoked; StrictHostKeyChecking
 * decides about one it does not know. */
static int check_known(ssh_session s, const struct cmdline *c,
		       const struct hostkey *h)
{
	switch (ssh_session_is_known_server(s)) {
	case SSH_KNOWN_HOSTS_OK:
		return 0;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
		warn_changed(h);
		return -1;
	case SSH_KNOWN_HOSTS_UNKNOWN:
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		return accept_new(s, c, h);
	default:
		migssh_say("host key verification failed: cannot check the key "
			"of %s against %s: %s", h->entry, h->known, ssh_get_error(s));
		return -1;
	}
}

static void free_hostkey(struct hostkey *h)
{
	free(h->known);
	free(h->global);
	if (h->fp)
		ssh_string_free_char(h->fp);
	ssh_key_free(h->key);
}

/* Verify the server's host key before anything else is sent: revoked keys
 * first (RevokedHostKeys, then @revoked in either known hosts file), as
 * ssh(1) does, and under every StrictHostKeyChecking; then known_hosts. */
int migssh_verify_host(ssh_session s, const struct cmdline *c)
{
	struct hostkey h = { 0 };
	int rc = -1;

	if (read_hostkey(s, c, &h) == 0 &&
	    (!c->revoked || check_revoked_file(&h, c->revoked) == 0) &&
	    check_revoked_marker(&h, h.known) == 0 &&
	    check_revoked_marker(&h, h.global) == 0)
		rc = check_known(s, c, &h);
	free_hostkey(&h);
	return rc;
}

int migssh_authenticate(ssh_session s)
{
	char *user = NULL;
	int rc;

	rc = ssh_userauth_publickey_auto(s, NULL, NULL);
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	ssh_options_get(s, SSH_OPTIONS_USER, &user);
	if (rc == SSH_AUTH_ERROR)
		migssh_say("authentication as %s failed: %s", user ? user : "?",
			ssh_get_error(s));
	else {
		int m = ssh_userauth_list(s, NULL);
		char methods[128] = "";
		if (m & SSH_AUTH_METHOD_PUBLICKEY)
			strcat(methods, ",publickey");
		if (m & SSH_AUTH_METHOD_PASSWORD)
			strcat(methods, ",password");
		if (m & SSH_AUTH_METHOD_INTERACTIVE)
			strcat(methods, ",keyboard-interactive");
		if (m & SSH_AUTH_METHOD_GSSAPI_MIC)
			strcat(methods, ",gssapi-with-mic");
		if (m & SSH_AUTH_METHOD_HOSTBASED)
			strcat(methods, ",hostbased");
		migssh_say("authentication as %s failed: permission denied (%s): "
			"no key from the agent, -i or the default identities "
			"was accepted", user ? user : "?",
			methods[0] ? methods + 1 : "none");
	}
	free(user);
	return -1;
}
