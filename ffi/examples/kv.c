/*
 * kv: a replicated key/value table on the Osiris C API, after the Isis2
 * example (UPDATE by OrderedSend, LOOKUP by Query, state transfer on join).
 *
 *   kv NODE_ID (bootstrap | SEED_ADDR) UPDATES_A UPDATES_B MEMBERS EXPECT
 *
 * One member process. It starts a node on 127.0.0.1 (any port) and prints
 * "READY <addr>", joins the group "kv" (a joiner loads the table from the
 * oldest member: "LOADED <entries>"), makes UPDATES_A updates at once, then
 * waits for MEMBERS members and makes UPDATES_B more (each also sets the
 * shared key "last"). After a barrier of OrderedSends (every member's
 * updates are then applied everywhere) it prints "TABLE entries=..
 * last=.. digest=..", which must be the same line at every member (total
 * order) with EXPECT entries, then LOOKUPs "last" at every member by a query
 * and checks that all replies agree. A second barrier ends the run.
 */
#include <inttypes.h>
#include <osiris.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENTRIES_MAX 1024
#define TEXT_MAX 48
#define WAIT_SECONDS 30

struct entry {
    char key[TEXT_MAX];
    char value[TEXT_MAX];
};

/* Shared between the main thread and the callbacks (data-plane thread). */
struct table {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct entry entries[ENTRIES_MAX];
    size_t len;
    size_t view_members;
    size_t done_votes; /* "D": the sender's updates are all sent (before them in the total order) */
    size_t end_votes;  /* "E": the sender has looked up; it may leave */
};

static struct table table = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .changed = PTHREAD_COND_INITIALIZER,
};

#define CHECK(call)                                                                    \
    do {                                                                               \
        osiris_result check_result_ = (call);                                          \
        if (check_result_ != OSIRIS_OK) {                                              \
            fprintf(stderr, "FAILED %s: %s: %s\n", #call,                              \
                    osiris_result_name(check_result_), osiris_last_error_message());   \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* Sets key to value (the caller holds the lock). */
static void put(const char *key, const char *value) {
    for (size_t i = 0; i < table.len; i++) {
        if (strcmp(table.entries[i].key, key) == 0) {
            snprintf(table.entries[i].value, TEXT_MAX, "%s", value);
            return;
        }
    }
    if (table.len == ENTRIES_MAX) {
        fprintf(stderr, "table full\n");
        exit(1);
    }
    snprintf(table.entries[table.len].key, TEXT_MAX, "%s", key);
    snprintf(table.entries[table.len].value, TEXT_MAX, "%s", value);
    table.len++;
}

static const char *get(const char *key) {
    for (size_t i = 0; i < table.len; i++) {
        if (strcmp(table.entries[i].key, key) == 0) return table.entries[i].value;
    }
    return NULL;
}

/* Applies "U key value" or "D node" (a payload is not NUL-terminated). */
static void apply(const uint8_t *payload, size_t len) {
    char text[2 * TEXT_MAX + 4];
    if (len >= sizeof text) return;
    memcpy(text, payload, len);
    text[len] = '\0';
    char key[TEXT_MAX], value[TEXT_MAX];
    pthread_mutex_lock(&table.lock);
    if (sscanf(text, "U %47s %47s", key, value) == 2) {
        put(key, value);
    } else if (text[0] == 'D') {
        table.done_votes++;
    } else if (text[0] == 'E') {
        table.end_votes++;
    }
    pthread_cond_broadcast(&table.changed);
    pthread_mutex_unlock(&table.lock);
}

static void on_view(void *user, const osiris_view *view) {
    (void)user;
    pthread_mutex_lock(&table.lock);
    table.view_members = view->members_len;
    pthread_cond_broadcast(&table.changed);
    pthread_mutex_unlock(&table.lock);
    printf("VIEW %" PRIu64 " members=%zu joined=%zu\n", view->id, view->members_len,
           view->joined_len);
}

static void on_message(void *user, const osiris_message *message) {
    (void)user;
    apply(message->payload, message->len);
}

/* LOOKUP: reply at once, with a copy of the value. */
static void on_query(void *user, const osiris_query_request *query, osiris_buf *reply) {
    (void)user;
    char key[TEXT_MAX + 4] = {0};
    if (query->len < 2 || query->len - 2 >= TEXT_MAX) return;
    memcpy(key, query->payload + 2, query->len - 2); /* "L key" */
    pthread_mutex_lock(&table.lock);
    const char *value = get(key);
    char answer[TEXT_MAX];
    snprintf(answer, sizeof answer, "%s", value ? value : "missing");
    pthread_mutex_unlock(&table.lock);
    osiris_buf_set(reply, (const uint8_t *)answer, strlen(answer));
}

/* State transfer, donor side: "key value\n" per entry. */
static void on_checkpoint(void *user, osiris_buf *state) {
    (void)user;
    pthread_mutex_lock(&table.lock);
    for (size_t i = 0; i < table.len; i++) {
        char line[2 * TEXT_MAX + 2];
        int n = snprintf(line, sizeof line, "%s %s\n", table.entries[i].key,
                         table.entries[i].value);
        osiris_buf_append(state, (const uint8_t *)line, (size_t)n);
    }
    pthread_mutex_unlock(&table.lock);
}

/* State transfer, joiner side. */
static void on_load(void *user, const uint8_t *state, size_t len) {
    (void)user;
    char *text = malloc(len + 1);
    if (!text) exit(1);
    memcpy(text, state, len);
    text[len] = '\0';
    pthread_mutex_lock(&table.lock);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char key[TEXT_MAX], value[TEXT_MAX];
        if (sscanf(line, "%47s %47s", key, value) == 2) put(key, value);
    }
    size_t loaded = table.len;
    pthread_mutex_unlock(&table.lock);
    free(text);
    printf("LOADED %zu\n", loaded);
}

/* Waits (holding the lock) until *counter >= target; exits on timeout. */
static void await_count(const size_t *counter, size_t target, const char *what) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_SECONDS;
    while (*counter < target) {
        if (pthread_cond_timedwait(&table.changed, &table.lock, &deadline) != 0) {
            printf("TIMEOUT %s: %zu of %zu\n", what, *counter, target);
            exit(1);
        }
    }
}

static void update(const osiris_group *group, const char *key, const char *value) {
    char text[2 * TEXT_MAX + 4];
    int n = snprintf(text, sizeof text, "U %s %s", key, value);
    CHECK(osiris_send(group, OSIRIS_SEND_ORDERED, (const uint8_t *)text, (size_t)n));
}

/* An OrderedSend barrier vote: "D <node>" or "E <node>". */
static void vote(const osiris_group *group, char kind, unsigned node_id) {
    char text[16];
    int n = snprintf(text, sizeof text, "%c %u", kind, node_id);
    CHECK(osiris_send(group, OSIRIS_SEND_ORDERED, (const uint8_t *)text, (size_t)n));
}

static int by_key(const void *a, const void *b) {
    return strcmp(((const struct entry *)a)->key, ((const struct entry *)b)->key);
}

/* FNV-1a over the sorted table (the caller holds the lock). */
static uint64_t digest(void) {
    qsort(table.entries, table.len, sizeof table.entries[0], by_key);
    uint64_t hash = 0xcbf29ce484222325u;
    for (size_t i = 0; i < table.len; i++) {
        const char *parts[2] = {table.entries[i].key, table.entries[i].value};
        for (int p = 0; p < 2; p++) {
            for (const char *c = parts[p]; *c; c++) hash = (hash ^ (uint8_t)*c) * 0x100000001b3u;
            hash = (hash ^ '\n') * 0x100000001b3u;
        }
    }
    return hash;
}

/* LOOKUP "last" at every member; prints whether all replies agree. */
static void lookup_last(const osiris_group *group, size_t members) {
    const char request[] = "L last";
    osiris_query_spec spec = {OSIRIS_QUERY_ALL, 0, OSIRIS_ORDER_TOTAL, 5000};
    osiris_query_result *result = NULL;
    CHECK(osiris_query(group, &spec, (const uint8_t *)request, strlen(request), &result));
    size_t replies = osiris_query_result_reply_count(result);
    int agree = replies == members;
    char first[TEXT_MAX] = "";
    for (size_t i = 0; i < replies; i++) {
        const uint8_t *data = NULL;
        size_t len = 0;
        osiris_member from;
        CHECK(osiris_query_result_reply(result, i, &from, &data, &len));
        char value[TEXT_MAX] = "";
        memcpy(value, data, len < TEXT_MAX - 1 ? len : TEXT_MAX - 1);
        if (i == 0) memcpy(first, value, sizeof first);
        if (strcmp(first, value) != 0) agree = 0;
    }
    printf("LOOKUP last replies=%zu agree=%s value=%s timed_out=%s\n", replies,
           agree ? "yes" : "no", first, osiris_query_result_timed_out(result) ? "yes" : "no");
    osiris_query_result_free(result);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: kv NODE_ID (bootstrap|SEED_ADDR) UPDATES_A UPDATES_B MEMBERS EXPECT\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsigned node_id = (unsigned)atoi(argv[1]);
    int bootstrap = strcmp(argv[2], "bootstrap") == 0;
    int updates_a = atoi(argv[3]), updates_b = atoi(argv[4]);
    size_t members = (size_t)atoi(argv[5]), expect = (size_t)atoi(argv[6]);

    char toml[512];
    snprintf(toml, sizeof toml,
             "node = %u\nbind = \"127.0.0.1:0\"\nbootstrap = %s\nseeds = [%s%s%s]\n",
             node_id, bootstrap ? "true" : "false", bootstrap ? "" : "\"",
             bootstrap ? "" : argv[2], bootstrap ? "" : "\"");
    osiris_config *config = NULL;
    CHECK(osiris_config_from_toml(toml, &config));
    osiris_node *node = NULL;
    CHECK(osiris_node_start(config, NULL, &node));
    osiris_config_free(config); /* the node keeps its own copy */
    char address[64];
    CHECK(osiris_node_local_addr(node, address, sizeof address));
    printf("READY %s\n", address);

    osiris_group_callbacks callbacks = {
        .user = NULL,
        .on_view = on_view,
        .on_message = on_message,
        .on_query = on_query,
        .on_checkpoint = on_checkpoint,
        .on_load = on_load,
    };
    osiris_group *group = NULL;
    CHECK(osiris_group_join(node, "kv", &callbacks, &group));
    printf("JOINED kv\n");

    char key[TEXT_MAX], value[TEXT_MAX];
    for (int i = 0; i < updates_a; i++) {
        snprintf(key, sizeof key, "a%u-%d", node_id, i);
        snprintf(value, sizeof value, "%d", i);
        update(group, key, value);
    }
    pthread_mutex_lock(&table.lock);
    await_count(&table.len, (size_t)updates_a, "phase A updates");
    printf("PHASEA %zu\n", table.len);
    await_count(&table.view_members, members, "members");
    pthread_mutex_unlock(&table.lock);

    for (int i = 0; i < updates_b; i++) {
        snprintf(key, sizeof key, "b%u-%d", node_id, i);
        snprintf(value, sizeof value, "%u.%d", node_id, i);
        update(group, key, value);
        update(group, "last", value);
    }
    /* Every member's updates precede its "D" vote in the one total order,
     * so once all votes are in, the table is final (counting entries is
     * not enough: the last write to "last" may still be on its way). */
    vote(group, 'D', node_id);
    pthread_mutex_lock(&table.lock);
    await_count(&table.done_votes, members, "done votes");
    if (table.len != expect) printf("ENTRIES %zu, expected %zu\n", table.len, expect);
    const char *last = get("last");
    char last_copy[TEXT_MAX];
    snprintf(last_copy, sizeof last_copy, "%s", last ? last : "none");
    printf("TABLE entries=%zu last=%s digest=%016" PRIx64 "\n", table.len, last_copy, digest());
    pthread_mutex_unlock(&table.lock);

    lookup_last(group, members);

    /* Barrier: nobody leaves before every member has looked up. */
    vote(group, 'E', node_id);
    pthread_mutex_lock(&table.lock);
    await_count(&table.end_votes, members, "end votes");
    pthread_mutex_unlock(&table.lock);

    CHECK(osiris_group_leave(group));
    osiris_group_free(group);
    osiris_node_free(node);
    printf("BYE\n");
    return 0;
}
