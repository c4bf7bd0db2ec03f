/*
 * baetyl_node_limits: a Mosquitto 2.0 plugin that holds nodes to the limits of DESIGN §4.
 *
 * Mosquitto's own size and retain settings (message_size_limit, max_packet_size,
 * retain_available) are global, and the cloud's answers must be allowed several MiB (a
 * configuration). A node's messages are small: its largest is a shadow report or a command
 * answer. This plugin sees every PUBLISH after the ACL check and refuses, for any client that is
 * not a cloud replica:
 *   - a payload over `max_payload` bytes;
 *   - a retained message, except on the presence topic (the only retained channel of §4);
 *   - a presence message over `presence_max_payload` bytes.
 * A refused PUBLISH is dropped before it is stored or routed; an MQTT 5 client gets the reason
 * code "not authorized" in its PUBACK. Mosquitto reads the whole packet before the plugin runs,
 * so the global message_size_limit still bounds that one buffer.
 *
 * Options (plugin_opt_<name> in mosquitto.conf, all required):
 *   cloud_prefix          username prefix of cloud replicas ("baetyl-cloud:"); not limited
 *   max_payload           largest payload, in bytes, a node may publish
 *   presence_max_payload  largest presence payload, in bytes
 *   retain_suffix         topic suffix on which a node may retain ("/presence")
 *
 * Built by cloud/broker/node_limits_plugin.py against Debian's mosquitto-dev headers.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define NOTICE_INTERVAL_SECONDS 10

struct node_limits {
	char *cloud_prefix;
	size_t cloud_prefix_len;
	char *retain_suffix;
	size_t retain_suffix_len;
	unsigned long max_payload;
	unsigned long presence_max_payload;
	/* Refusals are logged at most once per NOTICE_INTERVAL_SECONDS, with a count, so a node
	 * that keeps publishing cannot flood the broker's log. */
	time_t last_notice;
	unsigned long refused_since_notice;
};

static mosquitto_plugin_id_t *plugin_id;
static struct node_limits limits;

static int ends_with(const char *text, const char *suffix, size_t suffix_len)
{
	size_t len = strlen(text);
	return len >= suffix_len && memcmp(text + len - suffix_len, suffix, suffix_len) == 0;
}

static int parse_size(const char *name, const char *value, unsigned long *out)
{
	char *end = NULL;
	unsigned long parsed;

	if(value == NULL || *value < '0' || *value > '9'){
		mosquitto_log_printf(MOSQ_LOG_ERR, "baetyl_node_limits: %s must be a number of bytes", name);
		return 1;
	}
	errno = 0;
	parsed = strtoul(value, &end, 10);
	if(errno != 0 || end == NULL || *end != '\0' || parsed == 0 || parsed > UINT32_MAX){
		mosquitto_log_printf(MOSQ_LOG_ERR,
				"baetyl_node_limits: %s must be between 1 and %lu bytes, got '%s'",
				name, (unsigned long)UINT32_MAX, value);
		return 1;
	}
	*out = parsed;
	return 0;
}

static void note_refusal(const struct mosquitto_evt_message *msg, const char *reason)
{
	time_t now = time(NULL);
	const char *id = mosquitto_client_id(msg->client);

	limits.refused_since_notice++;
	if(now - limits.last_notice < NOTICE_INTERVAL_SECONDS){
		return;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			"baetyl_node_limits: refused %lu publish(es) from nodes; latest from %s on %s: %s (%lu bytes)",
			limits.refused_since_notice, id ? id : "?", msg->topic ? msg->topic : "?", reason,
			(unsigned long)msg->payloadlen);
	limits.last_notice = now;
	limits.refused_since_notice = 0;
}

static int on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *msg = event_data;
	const char *username;
	int presence;

	(void)event;
	(void)userdata;
	username = mosquitto_client_username(msg->client);
	if(username != NULL && strncmp(username, limits.cloud_prefix, limits.cloud_prefix_len) == 0){
		return MOSQ_ERR_SUCCESS;
	}
	if(msg->payloadlen > limits.max_payload){
		note_refusal(msg, "payload over the node limit");
		return MOSQ_ERR_ACL_DENIED;
	}
	presence = msg->topic != NULL && ends_with(msg->topic, limits.retain_suffix, limits.retain_suffix_len);
	if(msg->retain && !presence){
		note_refusal(msg, "retained message outside presence");
		return MOSQ_ERR_ACL_DENIED;
	}
	if(presence && msg->payloadlen > limits.presence_max_payload){
		note_refusal(msg, "presence over its limit");
		return MOSQ_ERR_ACL_DENIED;
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5){
			return 5;
		}
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *options, int option_count)
{
	const char *cloud_prefix = NULL;
	const char *retain_suffix = NULL;
	int have_max = 0, have_presence = 0;

	(void)userdata;
	memset(&limits, 0, sizeof(limits));
	for(int i = 0; i < option_count; i++){
		const char *key = options[i].key;
		const char *value = options[i].value;
		if(strcmp(key, "cloud_prefix") == 0){
			cloud_prefix = value;
		}else if(strcmp(key, "retain_suffix") == 0){
			retain_suffix = value;
		}else if(strcmp(key, "max_payload") == 0){
			if(parse_size(key, value, &limits.max_payload)) return MOSQ_ERR_INVAL;
			have_max = 1;
		}else if(strcmp(key, "presence_max_payload") == 0){
			if(parse_size(key, value, &limits.presence_max_payload)) return MOSQ_ERR_INVAL;
			have_presence = 1;
		}else{
			mosquitto_log_printf(MOSQ_LOG_ERR, "baetyl_node_limits: unknown option '%s'", key);
			return MOSQ_ERR_INVAL;
		}
	}
	if(cloud_prefix == NULL || *cloud_prefix == '\0' || retain_suffix == NULL
			|| *retain_suffix == '\0' || !have_max || !have_presence){
		mosquitto_log_printf(MOSQ_LOG_ERR,
				"baetyl_node_limits: cloud_prefix, retain_suffix, max_payload and "
				"presence_max_payload are all required");
		return MOSQ_ERR_INVAL;
	}
	limits.cloud_prefix = strdup(cloud_prefix);
	limits.retain_suffix = strdup(retain_suffix);
	if(limits.cloud_prefix == NULL || limits.retain_suffix == NULL){
		free(limits.cloud_prefix);
		free(limits.retain_suffix);
		return MOSQ_ERR_NOMEM;
	}
	limits.cloud_prefix_len = strlen(limits.cloud_prefix);
	limits.retain_suffix_len = strlen(limits.retain_suffix);
	plugin_id = identifier;
	mosquitto_log_printf(MOSQ_LOG_INFO,
			"baetyl_node_limits: nodes may publish up to %lu bytes, presence up to %lu, retained only on *%s",
			limits.max_payload, limits.presence_max_payload, limits.retain_suffix);
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)userdata;
	(void)options;
	(void)option_count;
	if(plugin_id != NULL){
		mosquitto_callback_unregister(plugin_id, MOSQ_EVT_MESSAGE, on_message, NULL);
	}
	free(limits.cloud_prefix);
	free(limits.retain_suffix);
	memset(&limits, 0, sizeof(limits));
	return MOSQ_ERR_SUCCESS;
}
