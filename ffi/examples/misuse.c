/*
 * misuse: every misuse of the C API the library can detect gives an error
 * code and a message, never a crash. One node, one member; run under
 * valgrind by scripts/test.sh. Prints "misuse: N passed, 0 failed" and
 * exits 1 on any failed expectation.
 */
#include <osiris.h>
#include <stdio.h>
#include <string.h>

static int passed, failed;
static int refused_in_callback; /* set on the data-plane thread, read after the query */

/* The call returned `want`, and a failure came with a message. */
static void expect(const char *what, osiris_result got, osiris_result want) {
    const char *message = osiris_last_error_message();
    int ok = got == want && (want == OSIRIS_OK || (message && message[0] != '\0'));
    printf("%s %s: %s%s%s\n", ok ? "ok" : "FAIL", what, osiris_result_name(got),
           want == OSIRIS_OK ? "" : " / ", want == OSIRIS_OK ? "" : message);
    if (ok) passed++; else failed++;
}

static void check(const char *what, int ok) {
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    if (ok) passed++; else failed++;
}

/* Replies at once with the request's bytes, and tries a call that would
 * wait for the data plane from the callback (refused). */
static void on_query(void *user, const osiris_query_request *query, osiris_buf *reply) {
    osiris_group *group = *(osiris_group **)user; /* set once joined */
    osiris_buf_set(reply, query->payload, query->len);
    refused_in_callback = osiris_flush(group) == OSIRIS_ERR_IN_CALLBACK;
}

int main(void) {
    const uint8_t hello[] = "hello";
    osiris_config *config = NULL;

    /* Configs. */
    expect("config from NULL text", osiris_config_from_toml(NULL, &config), OSIRIS_ERR_NULL);
    expect("config to NULL out", osiris_config_from_toml("node = 1", NULL), OSIRIS_ERR_NULL);
    expect("config not TOML", osiris_config_from_toml("node = = 1", &config), OSIRIS_ERR_CONFIG);
    expect("config unknown key",
           osiris_config_from_toml("node = 1\nbind = \"127.0.0.1:0\"\ncolour = 3\n", &config),
           OSIRIS_ERR_CONFIG);
    check("message names the unknown key", strstr(osiris_last_error_message(), "colour") != NULL);
    expect("config bad idle",
           osiris_config_from_toml("node = 1\nbind = \"127.0.0.1:0\"\nidle = \"nap\"\n", &config),
           OSIRIS_ERR_CONFIG);
    check("no config written on failure", config == NULL);
    expect("config ok",
           osiris_config_from_toml(
               "node = 1\nbind = \"127.0.0.1:0\"\nbootstrap = true\nidle = \"block\"\n", &config),
           OSIRIS_OK);

    /* Nodes. */
    osiris_node *node = NULL;
    expect("start with NULL config", osiris_node_start(NULL, NULL, &node), OSIRIS_ERR_NULL);
    expect("start with a config that is not one",
           osiris_node_start((const osiris_config *)hello, NULL, &node), OSIRIS_ERR_BAD_HANDLE);
    expect("start ok", osiris_node_start(config, NULL, &node), OSIRIS_OK);
    osiris_config_free(config);
    osiris_config_free(config); /* detected and ignored */
    check("double free of a config is refused",
          strstr(osiris_last_error_message(), "not a live config") != NULL);
    osiris_config_free(NULL);
    char small[4];
    expect("local addr into 4 bytes", osiris_node_local_addr(node, small, sizeof small),
           OSIRIS_ERR_INVALID_ARGUMENT);
    expect("node passed as a group", osiris_flush((const osiris_group *)node),
           OSIRIS_ERR_BAD_HANDLE);

    /* Groups. */
    osiris_group *group = NULL;
    expect("join with NULL name", osiris_group_join(node, NULL, NULL, &group), OSIRIS_ERR_NULL);
    expect("join with NULL node", osiris_group_join(NULL, "g", NULL, &group), OSIRIS_ERR_NULL);
    expect("join ok (no callbacks)", osiris_group_join(node, "plain", NULL, &group), OSIRIS_OK);
    expect("send NULL group", osiris_send(NULL, OSIRIS_SEND_FIFO, hello, 5), OSIRIS_ERR_NULL);
    expect("send bad kind", osiris_send(group, 7, hello, 5), OSIRIS_ERR_INVALID_ARGUMENT);
    expect("send NULL data with len", osiris_send(group, OSIRIS_SEND_FIFO, NULL, 5),
           OSIRIS_ERR_NULL);
    expect("send empty with NULL data", osiris_send(group, OSIRIS_SEND_FIFO, NULL, 0), OSIRIS_OK);
    static uint8_t big[100000];
    expect("send too large", osiris_send(group, OSIRIS_SEND_SAFE, big, sizeof big),
           OSIRIS_ERR_PAYLOAD_TOO_LARGE);
    expect("send ok", osiris_send(group, OSIRIS_SEND_ORDERED, hello, 5), OSIRIS_OK);
    expect("flush ok", osiris_flush(group), OSIRIS_OK);
    expect("reply with NULL handle", osiris_reply(group, NULL, hello, 5), OSIRIS_ERR_NULL);
    expect("leave ok", osiris_group_leave(group), OSIRIS_OK);
    expect("send on a left group", osiris_send(group, OSIRIS_SEND_FIFO, hello, 5),
           OSIRIS_ERR_CLOSED);
    expect("leave twice", osiris_group_leave(group), OSIRIS_ERR_CLOSED);
    expect("flush on a left group", osiris_flush(group), OSIRIS_ERR_CLOSED);
    osiris_group_free(group);
    osiris_group_free(group); /* detected and ignored */
    check("double free of a group is refused",
          strstr(osiris_last_error_message(), "not a live group") != NULL);
    expect("flush on a freed group", osiris_flush(group), OSIRIS_ERR_BAD_HANDLE);

    /* Queries: a member answering itself; a callback that tries to block. */
    osiris_group *echo = NULL;
    osiris_group_callbacks callbacks = {0};
    callbacks.on_query = on_query;
    osiris_group *slot = NULL;
    callbacks.user = &slot;
    expect("join echo", osiris_group_join(node, "echo", &callbacks, &echo), OSIRIS_OK);
    slot = echo;
    osiris_query_result *result = NULL;
    osiris_query_spec bad_spec = {OSIRIS_QUERY_K, 0, OSIRIS_ORDER_TOTAL, 1000};
    expect("query with k = 0", osiris_query(echo, &bad_spec, hello, 5, &result),
           OSIRIS_ERR_INVALID_ARGUMENT);
    expect("query with NULL out", osiris_query(echo, NULL, hello, 5, NULL), OSIRIS_ERR_NULL);
    expect("query ok", osiris_query(echo, NULL, hello, 5, &result), OSIRIS_OK);
    check("flush from a callback is refused", refused_in_callback);
    check("one reply", osiris_query_result_reply_count(result) == 1);
    const uint8_t *data = NULL;
    size_t len = 0;
    expect("reply 0", osiris_query_result_reply(result, 0, NULL, &data, &len), OSIRIS_OK);
    check("reply echoes the request", len == 5 && memcmp(data, hello, 5) == 0);
    expect("reply past the end", osiris_query_result_reply(result, 1, NULL, &data, &len),
           OSIRIS_ERR_INVALID_ARGUMENT);
    check("count of NULL result is 0", osiris_query_result_reply_count(NULL) == 0);
    osiris_query_result_free(result);
    osiris_query_result_free(result); /* detected and ignored */
    check("double free of a result is refused",
          strstr(osiris_last_error_message(), "not a live query result") != NULL);
    expect("buf set on NULL", osiris_buf_set(NULL, hello, 5), OSIRIS_ERR_NULL);

    /* Shutdown: the node's groups report it; frees are still fine. */
    expect("shutdown", osiris_node_shutdown(node), OSIRIS_OK);
    expect("send after shutdown", osiris_send(echo, OSIRIS_SEND_FIFO, hello, 5),
           OSIRIS_ERR_STOPPED);
    osiris_group *late = NULL;
    expect("join after shutdown", osiris_group_join(node, "late", NULL, &late),
           OSIRIS_ERR_STOPPED);
    osiris_group_free(echo);
    osiris_node_free(node);
    osiris_node_free(node); /* detected and ignored */
    check("double free of a node is refused",
          strstr(osiris_last_error_message(), "not a live node") != NULL);
    osiris_node_free(NULL);
    osiris_group_free(NULL);
    osiris_query_result_free(NULL);

    printf("misuse: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
