/*
 * ssh-auth.c - who is at each end: the server's host key checked against
 * known_hosts (StrictHostKeyChecking deciding about a new one), then our
 * public keys offered, never a passphrase asked for. Apart because these
 * are the checks that keep the stream from the wrong host.
 */
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

/* Verify the server's host key before anything else is sent. */
int migssh_verify_host(ssh_session s, const struct cmdline *c, enum strict strict)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL, *known = NULL, *file = NULL;
	unsigned int port = 22;
	char *host = NULL, entry[300];
	int rc = -1;

	if (ssh_get_server_publickey(s, &key) < 0 ||
	    ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) < 0 ||
	    !(fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen))) {
		migssh_die_msg("host key verification failed: cannot read the "
			"server's key: %s", ssh_get_error(s));
		goto out;
	}
	ssh_options_get_port(s, &port);
	ssh_options_get(s, SSH_OPTIONS_HOST, &host);
	ssh_options_get(s, SSH_OPTIONS_KNOWNHOSTS, &file);
	if (port == 22)
		snprintf(entry, sizeof entry, "%s", host ? host : c->host);
	else
		snprintf(entry, sizeof entry, "[%s]:%u", host ? host : c->host, port);
	known = file ? file : strdup("~/.ssh/known_hosts");

	switch (ssh_session_is_known_server(s)) {
	case SSH_KNOWN_HOSTS_OK:
		rc = 0;
		break;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
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
			key_type_name(key), fp, known);
		migssh_die_msg("host key verification failed: the host key of %s "
			"has changed (%s key %s), refusing to connect",
			entry, key_type_name(key), fp);
		break;
	case SSH_KNOWN_HOSTS_UNKNOWN:
	case SSH_KNOWN_HOSTS_NOT_FOUND:
		if (strict == STRICT_YES) {
			migssh_die_msg("host key verification failed: no host key is "
				"known for %s and StrictHostKeyChecking is yes "
				"(%s key %s)", entry, key_type_name(key), fp);
			break;
		}
		if (ssh_session_update_known_hosts(s) < 0) {
			migssh_die_msg("host key verification failed: cannot add the "
				"key of %s to %s: %s", entry, known,
				ssh_get_error(s));
			break;
		}
		if (!c->quiet)
			migssh_die_msg("warning: permanently added %s (%s key %s) to "
				"%s", entry, key_type_name(key), fp, known);
		rc = 0;
		break;
	default:
		migssh_die_msg("host key verification failed: cannot check the key "
			"of %s against %s: %s", entry, known, ssh_get_error(s));
		break;
	}
out:
	free(host);
	free(known);
	if (fp)
		ssh_string_free_char(fp);
	if (hash)
		ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
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
		migssh_die_msg("authentication as %s failed: %s", user ? user : "?",
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
		migssh_die_msg("authentication as %s failed: permission denied (%s): "
			"no key from the agent, -i or the default identities "
			"was accepted", user ? user : "?",
			methods[0] ? methods + 1 : "none");
	}
	free(user);
	return -1;
}
