/* A plain C program exercising the C ABI (softadastra.h): options, open/close, put, get,
 * remove, contains, size, batch, node info, sync (tick, sync state, key status, queue and
 * prune), the network (transport, discovery, connect, peers, two clients syncing over
 * loopback), the last error, NULL handling and recovery after reopen. Compiled as C11
 * with -Wall -Wextra -Werror -pedantic. Exit code 0 means every check passed; each failed
 * check prints its line. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
/* 64-bit file offsets and inode numbers on 32-bit targets too (armv7): without it readdir
 * fails with EOVERFLOW on a directory whose entries have 64-bit cookies, as ext4's do for
 * a 32-bit program under qemu-user on a 64-bit kernel (scripts/test-cross.sh armv7). */
#define _FILE_OFFSET_BITS 64

#include <softadastra.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error %s: %s [%s])\n",       \
                    __FILE__, __LINE__, #cond, sa_status_string(sa_last_error_code()),   \
                    sa_last_error_message(), sa_last_error_context());                   \
            failures++;                                                                  \
        }                                                                                \
    } while (0)

#define KEY(s) (const uint8_t *)(s), strlen(s)

static int contains_text(const char *haystack, const char *needle) {
    return strstr(haystack, needle) != NULL;
}

/* Whether `s` is `n` decimal digits and nothing else. */
static int all_digits(const char *s, size_t n) {
    if (strlen(s) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
    }
    return 1;
}

/* Removes a WAL and what the node keeps next to it: the lock file "<wal>", its segments
 * "<wal>.<20 digits>", snapshots "<wal>.snap.<20 digits>", the identity key "<wal>.key"
 * and the trust file "<wal>.trust". Anything else is left (and then found by the
 * directory check). */
static void remove_node_files(const char *wal) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s", wal);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : wal;
    if (slash) {
        *slash = '\0';
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    size_t base_len = strlen(base);
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char path[1200];
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strncmp(name, base, base_len) != 0) continue;
        const char *rest = name + base_len;
        int ours = rest[0] == '\0' || strcmp(rest, ".key") == 0 || strcmp(rest, ".trust") == 0 ||
                   (rest[0] == '.' && all_digits(rest + 1, 20)) ||
                   (strncmp(rest, ".snap.", 6) == 0 && all_digits(rest + 6, 20));
        if (ours) {
            snprintf(path, sizeof path, "%s/%s", dir, name);
            unlink(path);
        }
    }
    closedir(d);
}

/* Removes a backup directory made by sa_client_backup: its files (it holds nothing
 * else), then the directory. */
static void remove_backup_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char path[1200];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* Copies the sync counters of `client` to *copy and frees the returned struct. */
static sa_status_t read_sync_state(const sa_client_t *client, sa_sync_state_t *copy) {
    sa_sync_state_t *state = NULL;
    sa_status_t status = sa_client_sync_state(client, &state);
    if (status == SA_OK) {
        *copy = *state;
        sa_sync_state_free(state);
    }
    return status;
}

/* Ticks `client`, copies the result to *copy and frees the returned struct. */
static sa_status_t read_tick(sa_client_t *client, bool prune, sa_tick_result_t *copy) {
    sa_tick_result_t *tick = NULL;
    sa_status_t status = sa_client_tick(client, prune, &tick);
    if (status == SA_OK) {
        *copy = *tick;
        sa_tick_result_free(tick);
    }
    return status;
}

/* Whether the value of `key` in `client` is `expected` (text). */
static int value_is(const sa_client_t *client, const char *key, const char *expected) {
    sa_bytes_t *value = NULL;
    if (sa_client_get(client, KEY(key), &value) != SA_OK) return 0;
    int same = value->len == strlen(expected) && memcmp(value->data, expected, value->len) == 0;
    sa_bytes_free(value);
    return same;
}

/* New options for `node_id` with the memory-only preset. */
static sa_options_t *memory_options(const char *node_id) {
    sa_options_t *o = NULL;
    CHECK(sa_options_memory_only(node_id, &o) == SA_OK);
    return o;
}

/* A client made from `o`, which is freed. */
static sa_client_t *client_from(sa_options_t *o) {
    sa_client_t *client = NULL;
    CHECK(sa_client_new(o, &client) == SA_OK);
    sa_options_free(o);
    return client;
}

static void test_version_and_status_strings(void) {
    CHECK(strcmp(sa_version(), SOFTADASTRA_VERSION) == 0);
    CHECK(strcmp(sa_status_string(SA_OK), "ok") == 0);
    CHECK(strcmp(sa_status_string(SA_NOT_FOUND), "not_found") == 0);
    CHECK(strcmp(sa_status_string(SA_IO_ERROR), "io_error") == 0);
    CHECK(strcmp(sa_status_string(9999), "unknown") == 0);
}

static void test_options(void) {
    sa_options_t *o = NULL;
    CHECK(sa_options_new(&o) == SA_OK);
    const char *text = NULL;
    bool flag = false;
    uint64_t number = 0;
    CHECK(sa_options_get_text(o, SA_OPTION_NODE_ID, &text) == SA_OK && strcmp(text, "node-1") == 0);
    CHECK(sa_options_get_text(o, SA_OPTION_WAL_PATH, &text) == SA_OK &&
          strcmp(text, "data/sdk-store.wal") == 0);
    CHECK(sa_options_get_bool(o, SA_OPTION_AUTO_FLUSH, &flag) == SA_OK && flag);
    CHECK(sa_options_get_uint(o, SA_OPTION_SYNC_BATCH_SIZE, &number) == SA_OK && number == 64);
    CHECK(sa_options_get_bool(o, SA_OPTION_ENABLE_TRANSPORT, &flag) == SA_OK && !flag);
    CHECK(sa_options_get_uint(o, SA_OPTION_DISCOVERY_TTL_MS, &number) == SA_OK && number == 15000);
    CHECK(sa_options_get_uint(o, SA_OPTION_MAX_CLOCK_DRIFT_MS, &number) == SA_OK && number > 0);
    CHECK(sa_options_validate(o) == SA_OK);
    /* Wrong kinds, unknown numbers and numbers too wide are refused, naming the option. */
    CHECK(sa_options_set_bool(o, SA_OPTION_TRANSPORT_PORT, true) == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "transport_port"));
    CHECK(sa_options_set_uint(o, SA_OPTION_TRANSPORT_PORT, 70000) == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "70000"));
    CHECK(sa_options_set_text(o, 9999, "x") == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "not an option number"));
    CHECK(sa_options_get_text(o, SA_OPTION_AUTO_FLUSH, &text) == SA_INVALID_ARGUMENT);
    CHECK(sa_options_set_text(o, SA_OPTION_NODE_ID, NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "value") == 0);
    /* A text read stays valid until that option is set again. */
    CHECK(sa_options_set_text(o, SA_OPTION_DISPLAY_NAME, "Till 1") == SA_OK);
    CHECK(sa_options_get_text(o, SA_OPTION_DISPLAY_NAME, &text) == SA_OK);
    CHECK(sa_options_set_uint(o, SA_OPTION_ACK_TIMEOUT_MS, 2500) == SA_OK);
    CHECK(strcmp(text, "Till 1") == 0);
    sa_options_free(o);

    CHECK(sa_options_fast("fast-1", "/tmp/f.wal", &o) == SA_OK);
    CHECK(sa_options_get_bool(o, SA_OPTION_AUTO_FLUSH, &flag) == SA_OK && !flag);
    CHECK(sa_options_get_uint(o, SA_OPTION_SYNC_BATCH_SIZE, &number) == SA_OK && number == 128);
    CHECK(sa_options_get_uint(o, SA_OPTION_MAX_SYNC_RETRIES, &number) == SA_OK && number == 2);
    CHECK(sa_options_get_text(o, SA_OPTION_NODE_ID, &text) == SA_OK && strcmp(text, "fast-1") == 0);
    CHECK(sa_options_get_text(o, SA_OPTION_WAL_PATH, &text) == SA_OK &&
          strcmp(text, "/tmp/f.wal") == 0);
    sa_options_free(o);

    o = memory_options("mem-1");
    CHECK(sa_options_get_bool(o, SA_OPTION_ENABLE_WAL, &flag) == SA_OK && !flag);
    CHECK(sa_options_set_uint(o, SA_OPTION_SYNC_BATCH_SIZE, 0) == SA_OK);
    CHECK(sa_options_validate(o) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "sync_batch_size") == 0);
    CHECK(contains_text(sa_last_error_message(), "sync_batch_size"));
    sa_options_free(o);

    /* Every option by number: a name, a kind, and the name finds the number again. */
    CHECK(sa_option_count() > SA_OPTION_MAX_CLOCK_DRIFT_MS);
    for (uint32_t n = 0; n < sa_option_count(); n++) {
        const char *name = sa_option_name(n);
        CHECK(name != NULL && name[0] != '\0');
        uint32_t found = 9999;
        CHECK(name != NULL && sa_option_find(name, &found) == SA_OK && found == n);
        sa_option_kind_t kind;
        CHECK(sa_option_kind(n, &kind) == SA_OK);
    }
    CHECK(sa_option_name(sa_option_count()) == NULL);
    CHECK(strcmp(sa_option_name(SA_OPTION_AUTO_FLUSH), "auto_flush") == 0);
    uint32_t found = 0;
    CHECK(sa_option_find("no_such_option", &found) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "no_such_option") == 0);

    o = (sa_options_t *)&failures; /* any non-NULL marker */
    CHECK(sa_options_persistent(NULL, NULL, &o) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "node_id") == 0);
    CHECK(o == (sa_options_t *)&failures); /* out-param untouched on error */
    CHECK(sa_options_new(NULL) == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "out_options is NULL"));
    sa_options_free(NULL);
}

/* The lines of section `[name]` of a description (up to the next section), in `out`. */
static void section_of(const char *description, const char *name, char *out, size_t size) {
    char header[64];
    snprintf(header, sizeof header, "[%s]\n", name);
    out[0] = '\0';
    const char *start = strstr(description, header);
    if (start == NULL) return;
    start += strlen(header);
    const char *end = strstr(start, "\n[");
    size_t len = end != NULL ? (size_t)(end - start) + 1 : strlen(start);
    if (len >= size) len = size - 1;
    memcpy(out, start, len);
    out[len] = '\0';
}

static size_t count_lines(const char *text) {
    size_t n = 0;
    for (; *text; text++) n += *text == '\n';
    return n;
}

/* Parity: every option set through the C handle, and every field of the C structs, shows
 * in the library's own description (sa_client_describe) with the same name and value, and
 * the C side shows as many fields as the description has (a field C misses fails). */
static void test_parity_with_the_description(void) {
    sa_options_t *o = memory_options("c-parity");
    char expected[8192] = "";
    for (uint32_t n = 0; n < sa_option_count(); n++) {
        sa_option_kind_t kind;
        CHECK(sa_option_kind(n, &kind) == SA_OK);
        char line[256];
        if (kind == SA_OPTION_KIND_TEXT) {
            char value[64];
            snprintf(value, sizeof value, "text-%u", n);
            if (n == SA_OPTION_NODE_ID) snprintf(value, sizeof value, "c-parity-%u", n);
            CHECK(sa_options_set_text(o, n, value) == SA_OK);
            snprintf(line, sizeof line, "%s=%s\n", sa_option_name(n), value);
        } else if (kind == SA_OPTION_KIND_BOOL) {
            bool current = false;
            CHECK(sa_options_get_bool(o, n, &current) == SA_OK);
            CHECK(sa_options_set_bool(o, n, !current) == SA_OK);
            snprintf(line, sizeof line, "%s=%s\n", sa_option_name(n), !current ? "true" : "false");
        } else {
            CHECK(sa_options_set_uint(o, n, 1000u + n) == SA_OK);
            snprintf(line, sizeof line, "%s=%u\n", sa_option_name(n), 1000u + n);
        }
        strncat(expected, line, sizeof expected - strlen(expected) - 1);
    }
    sa_client_t *client = client_from(o);
    sa_bytes_t *description = NULL;
    CHECK(sa_client_describe(client, &description) == SA_OK);
    char section[8192];
    if (description != NULL) {
        section_of((const char *)description->data, "options", section, sizeof section);
        CHECK(strcmp(section, expected) == 0);
        sa_bytes_free(description);
    }
    sa_client_free(client);

    /* The structs an open client returns, against the same client's description. */
    client = client_from(memory_options("c-parity"));
    CHECK(sa_client_open(client) == SA_OK);
    CHECK(sa_client_put(client, KEY("p/1"), KEY("v")) == SA_OK);
    CHECK(sa_client_put(client, KEY("p/2"), KEY("v")) == SA_OK);
    sa_sync_state_t s;
    CHECK(read_sync_state(client, &s) == SA_OK);
    sa_network_stats_t *n = NULL;
    CHECK(sa_client_network_stats(client, &n) == SA_OK);
    description = NULL;
    CHECK(sa_client_describe(client, &description) == SA_OK);
    if (n != NULL && description != NULL) {
        char c_side[4096];
        snprintf(c_side, sizeof c_side,
                 "outbox_size=%zu\npending_count=%zu\nqueued_count=%zu\nin_flight_count=%zu\n"
                 "acknowledged_count=%zu\nfailed_count=%zu\nlast_submitted_version=%llu\n"
                 "last_applied_remote_version=%llu\ntotal_retries=%llu\nconflict_count=%llu\n",
                 s.outbox_size, s.pending_count, s.queued_count, s.in_flight_count,
                 s.acknowledged_count, s.failed_count,
                 (unsigned long long)s.last_submitted_version,
                 (unsigned long long)s.last_applied_remote_version,
                 (unsigned long long)s.total_retries, (unsigned long long)s.conflict_count);
        section_of((const char *)description->data, "sync_state", section, sizeof section);
        CHECK(strcmp(section, c_side) == 0);
        CHECK(s.outbox_size == 2 && s.last_submitted_version > 0);
        snprintf(c_side, sizeof c_side,
                 "connections=%zu\nconnection_limit=%zu\nrefused_connections=%llu\n"
                 "garbage_frames=%llu\nreceive_buffered=%zu\nsend_buffered=%zu\ndialled=%zu\n"
                 "catch_up_serving=%zu\ncatch_up_started=%llu\ncatch_up_busy=%llu\n"
                 "catch_up_protocol_errors=%llu\npeer_records=%zu\ndiscovered_dials=%zu\n"
                 "refused_own_origin=%llu\nrefused_clock_ahead=%llu\n"
                 "refused_too_many_origins=%llu\nrefused_too_many_ranges=%llu\n"
                 "refused_second_hand=%llu\nuntrusted_peers=%llu\ntls_failures=%llu\n"
                 "forged_announcements=%llu\nreplayed_announcements=%llu\n",
                 n->connections, n->connection_limit,
                 (unsigned long long)n->refused_connections,
                 (unsigned long long)n->garbage_frames, n->receive_buffered, n->send_buffered,
                 n->dialled, n->catch_up_serving, (unsigned long long)n->catch_up_started,
                 (unsigned long long)n->catch_up_busy,
                 (unsigned long long)n->catch_up_protocol_errors, n->peer_records,
                 n->discovered_dials, (unsigned long long)n->refused_own_origin,
                 (unsigned long long)n->refused_clock_ahead,
                 (unsigned long long)n->refused_too_many_origins,
                 (unsigned long long)n->refused_too_many_ranges,
                 (unsigned long long)n->refused_second_hand,
                 (unsigned long long)n->untrusted_peers, (unsigned long long)n->tls_failures,
                 (unsigned long long)n->forged_announcements,
                 (unsigned long long)n->replayed_announcements);
        section_of((const char *)description->data, "network_stats", section, sizeof section);
        CHECK(strcmp(section, c_side) == 0);
        CHECK(count_lines(section) == 22);
        /* Node info: every field but the uptime, which moves between the two calls. */
        sa_node_info_t *info = NULL;
        CHECK(sa_client_node_info(client, &info) == SA_OK);
        section_of((const char *)description->data, "node_info", section, sizeof section);
        CHECK(count_lines(section) == 9);
        if (info != NULL) {
            char line[512];
            snprintf(line, sizeof line, "node_id=%s\ndisplay_name=%s\nhostname=%s\nos_name=%s\n"
                     "version=%s\nstarted_at_ms=%lld\n", info->node_id, info->display_name,
                     info->hostname, info->os_name, info->version,
                     (long long)info->started_at_ms);
            CHECK(strncmp(section, line, strlen(line)) == 0);
            char caps[256] = "capabilities=";
            for (size_t i = 0; i < info->capabilities_len; i++) {
                if (i > 0) strncat(caps, ",", sizeof caps - strlen(caps) - 1);
                strncat(caps, info->capabilities[i], sizeof caps - strlen(caps) - 1);
            }
            strncat(caps, "\n", sizeof caps - strlen(caps) - 1);
            CHECK(strstr(section, caps) != NULL);
            char fingerprint[128];
            snprintf(fingerprint, sizeof fingerprint, "fingerprint=%s\n", info->fingerprint);
            CHECK(strlen(info->fingerprint) == 64);
            CHECK(strstr(section, fingerprint) != NULL);
            sa_node_info_free(info);
        }
    }
    sa_network_stats_free(n);
    sa_bytes_free(description);
    sa_client_free(client);
}

static void test_null_handling(void) {
    sa_client_t *sentinel = (sa_client_t *)&failures; /* any non-NULL marker */
    sa_client_t *client = sentinel;
    CHECK(sa_client_new(NULL, &client) == SA_INVALID_ARGUMENT);
    CHECK(client == sentinel); /* out-param untouched on error */
    CHECK(strcmp(sa_last_error_context(), "options") == 0);
    CHECK(sa_client_open(NULL) == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "sa_client_open: client is NULL"));
    CHECK(sa_client_put(NULL, KEY("k"), KEY("v")) == SA_INVALID_ARGUMENT);
    CHECK(!sa_client_is_open(NULL));
    CHECK(sa_batch_len(NULL) == 0);
    /* Every _free(NULL) is a no-op. */
    sa_client_free(NULL);
    sa_batch_free(NULL);
    sa_node_info_free(NULL);
    sa_bytes_free(NULL);
    sa_entries_free(NULL);
    sa_sync_state_free(NULL);
    sa_tick_result_free(NULL);
    sa_network_stats_free(NULL);
    sa_conflicts_free(NULL);
}

static void test_missing_directory(const char *dir) {
    char missing[512], wal[600];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    snprintf(wal, sizeof wal, "%s/node.wal", missing);
    sa_options_t *o = NULL;
    CHECK(sa_options_persistent("c-err", wal, &o) == SA_OK);
    sa_client_t *client = client_from(o);
    CHECK(sa_client_open(client) == SA_IO_ERROR);
    CHECK(sa_last_error_code() == SA_IO_ERROR);
    CHECK(strcmp(sa_last_error_context(), wal) == 0);
    CHECK(contains_text(sa_last_error_message(), "does not exist"));
    struct stat st;
    CHECK(stat(missing, &st) != 0); /* not created */
    sa_client_free(client);
}

static void test_store(const char *wal) {
    sa_options_t *o = NULL;
    CHECK(sa_options_persistent("c-node", wal, &o) == SA_OK);
    sa_client_t *client = client_from(o);
    CHECK(client != NULL);
    CHECK(!sa_client_is_open(client));
    CHECK(sa_client_put(client, KEY("k"), KEY("v")) == SA_INVALID_STATE);
    CHECK(sa_client_open(client) == SA_OK);
    CHECK(sa_last_error_code() == SA_OK && sa_last_error_message()[0] == '\0');
    CHECK(sa_client_is_open(client));

    CHECK(sa_client_put(client, KEY("app/name"), KEY("Softadastra")) == SA_OK);
    static const uint8_t binary[] = {0, 1, 0, 255};
    CHECK(sa_client_put(client, KEY("bin"), binary, sizeof binary) == SA_OK);
    CHECK(sa_client_put(client, KEY("gone"), KEY("x")) == SA_OK);
    CHECK(sa_client_remove(client, KEY("gone")) == SA_OK);
    CHECK(sa_client_remove(client, KEY("never-there")) == SA_OK);

    sa_bytes_t *value = NULL;
    CHECK(sa_client_get(client, KEY("app/name"), &value) == SA_OK);
    if (value != NULL) {
        CHECK(value->len == 11 && memcmp(value->data, "Softadastra", 11) == 0);
        CHECK(strcmp((const char *)value->data, "Softadastra") == 0); /* zero-terminated */
        sa_bytes_free(value);
    }
    value = NULL;
    CHECK(sa_client_get(client, KEY("bin"), &value) == SA_OK);
    if (value != NULL) {
        CHECK(value->len == sizeof binary && memcmp(value->data, binary, sizeof binary) == 0);
        sa_bytes_free(value);
    }

    /* Listing by prefix: keys in order with their values; removed keys are not listed. */
    sa_entries_t *entries = NULL;
    CHECK(sa_client_list(client, KEY("app/"), &entries) == SA_OK);
    if (entries != NULL) {
        CHECK(entries->len == 1);
        if (entries->len == 1) {
            const sa_entry_t *e = entries->items[0];
            CHECK(e->key_len == 8 && memcmp(e->key, "app/name", 8) == 0);
            CHECK(e->value_len == 11 && memcmp(e->value, "Softadastra", 11) == 0);
        }
        sa_entries_free(entries);
    }
    entries = NULL;
    CHECK(sa_client_list(client, NULL, 0, &entries) == SA_OK);
    if (entries != NULL) {
        CHECK(entries->len == 2); /* app/name and bin; "gone" was removed */
        if (entries->len == 2) {
            CHECK(entries->items[1]->value_len == sizeof binary &&
                  memcmp(entries->items[1]->value, binary, sizeof binary) == 0);
        }
        sa_entries_free(entries);
    }
    CHECK(sa_client_list(client, KEY("x"), NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "out_entries") == 0);

    sa_bytes_t *untouched = (sa_bytes_t *)&failures; /* any non-NULL marker */
    CHECK(sa_client_get(client, KEY("gone"), &untouched) == SA_NOT_FOUND);
    CHECK(strcmp(sa_last_error_context(), "gone") == 0);
    CHECK(contains_text(sa_last_error_message(), "gone"));
    CHECK(untouched == (sa_bytes_t *)&failures);

    CHECK(sa_client_put(client, (const uint8_t *)"", 0, KEY("v")) == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "must not be empty"));
    CHECK(sa_client_put(client, NULL, 3, KEY("v")) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "key") == 0);
    static const uint8_t bad_key[] = {'a', 0xff};
    CHECK(sa_client_put(client, bad_key, sizeof bad_key, KEY("v")) == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "not valid UTF-8"));
    CHECK(sa_client_get(client, KEY("k"), NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "out_value") == 0);

    bool found = false;
    CHECK(sa_client_contains(client, KEY("app/name"), &found) == SA_OK && found);
    CHECK(sa_client_contains(client, KEY("gone"), &found) == SA_OK && !found);
    size_t size = 0;
    CHECK(sa_client_size(client, &size) == SA_OK && size == 2);

    sa_batch_t *batch = NULL;
    CHECK(sa_batch_new(&batch) == SA_OK);
    CHECK(sa_batch_put(batch, KEY("b/1"), KEY("one")) == SA_OK);
    CHECK(sa_batch_put(batch, KEY("b/2"), KEY("two")) == SA_OK);
    CHECK(sa_batch_remove(batch, KEY("app/name")) == SA_OK);
    CHECK(sa_batch_put(batch, (const uint8_t *)"", 0, KEY("x")) == SA_INVALID_ARGUMENT);
    CHECK(sa_batch_len(batch) == 3);
    CHECK(sa_client_write_batch(client, batch) == SA_OK);
    CHECK(sa_client_write_batch(client, NULL) == SA_INVALID_ARGUMENT);
    sa_batch_free(batch);
    CHECK(sa_client_size(client, &size) == SA_OK && size == 3);

    sa_node_info_t *info = NULL;
    CHECK(sa_client_node_info(client, &info) == SA_OK);
    if (info != NULL) {
        CHECK(strcmp(info->node_id, "c-node") == 0);
        CHECK(strcmp(info->display_name, "c-node") == 0);
        CHECK(info->hostname[0] != '\0' && info->os_name[0] != '\0');
        CHECK(info->started_at_ms > 0 && info->uptime_ms >= 0);
        int has_wal = 0;
        for (size_t i = 0; i < info->capabilities_len; i++) {
            if (strcmp(info->capabilities[i], "wal") == 0) has_wal = 1;
        }
        CHECK(has_wal);
        sa_node_info_free(info);
    }
    CHECK(sa_client_refresh_node_info(client, NULL) == SA_INVALID_ARGUMENT);

    CHECK(sa_client_flush(client) == SA_OK);
    CHECK(sa_client_compact(client) == SA_OK);
    CHECK(sa_client_compact(NULL) == SA_INVALID_ARGUMENT);

    /* A backup goes into a new directory; a second one into the same is refused. */
    char backup[700], manifest[800];
    snprintf(backup, sizeof backup, "%s-backup", wal);
    snprintf(manifest, sizeof manifest, "%s/MANIFEST", backup);
    CHECK(sa_client_backup(client, backup) == SA_OK);
    struct stat manifest_stat;
    CHECK(stat(manifest, &manifest_stat) == 0 && (manifest_stat.st_mode & 0777) == 0600);
    CHECK(sa_client_backup(client, backup) == SA_ALREADY_EXISTS);
    CHECK(contains_text(sa_last_error_message(), "not empty"));
    CHECK(sa_client_backup(NULL, backup) == SA_INVALID_ARGUMENT);
    CHECK(sa_client_backup(client, NULL) == SA_INVALID_ARGUMENT);
    CHECK(sa_client_backup(client, "") == SA_INVALID_ARGUMENT);
    remove_backup_dir(backup);

    CHECK(sa_client_close(client) == SA_OK);
    CHECK(sa_client_compact(client) == SA_INVALID_STATE);
    CHECK(sa_client_backup(client, backup) == SA_INVALID_STATE);
    CHECK(sa_client_close(client) == SA_OK);
    CHECK(sa_client_put(client, KEY("k"), KEY("v")) == SA_INVALID_STATE);
    CHECK(contains_text(sa_last_error_message(), "not open"));
    CHECK(sa_client_size(client, &size) == SA_INVALID_STATE);
    sa_client_free(client);
}

static void test_key_status_strings(void) {
    CHECK(strcmp(sa_key_status_string(SA_KEY_STATUS_SAVED_LOCALLY), "saved_locally") == 0);
    CHECK(strcmp(sa_key_status_string(SA_KEY_STATUS_WAITING_TO_SYNC), "waiting_to_sync") == 0);
    CHECK(strcmp(sa_key_status_string(SA_KEY_STATUS_SYNCING), "syncing") == 0);
    CHECK(strcmp(sa_key_status_string(SA_KEY_STATUS_SYNCED), "synced") == 0);
    CHECK(strcmp(sa_key_status_string(SA_KEY_STATUS_RETRYING), "retrying") == 0);
    CHECK(strcmp(sa_key_status_string(SA_KEY_STATUS_SYNC_FAILED), "sync_failed") == 0);
    CHECK(strcmp(sa_key_status_string(SA_KEY_STATUS_CONFLICT_DETECTED), "conflict_detected") == 0);
    CHECK(strcmp(sa_key_status_string(9999), "unknown") == 0);
    CHECK(strcmp(sa_key_status_label(SA_KEY_STATUS_WAITING_TO_SYNC), "waiting to sync") == 0);
    CHECK(strcmp(sa_key_status_label(SA_KEY_STATUS_SYNC_FAILED), "sync failed") == 0);
    CHECK(strcmp(sa_key_status_label(9999), "unknown") == 0);
}

/* Sync with no peer connected: puts wait in the outbox, a tick sends nothing. */
static void test_sync(void) {
    sa_client_t *client = client_from(memory_options("c-sync"));

    /* Closed: every sync call is SA_INVALID_STATE and writes nothing. */
    sa_sync_state_t *no_state = NULL;
    sa_tick_result_t *no_tick = NULL;
    sa_sync_state_t state;
    sa_tick_result_t tick;
    size_t count = 42;
    sa_key_status_t key_status = SA_KEY_STATUS_SYNCED;
    CHECK(sa_client_sync_state(client, &no_state) == SA_INVALID_STATE);
    CHECK(no_state == NULL);
    CHECK(sa_client_tick(client, false, &no_tick) == SA_INVALID_STATE);
    CHECK(no_tick == NULL);
    CHECK(sa_client_retry_expired(client, &count) == SA_INVALID_STATE);
    CHECK(sa_client_prune_completed(client, &count) == SA_INVALID_STATE);
    CHECK(sa_client_prune_failed(client, &count) == SA_INVALID_STATE);
    CHECK(sa_client_queue_pending(client, &count) == SA_INVALID_STATE);
    CHECK(sa_client_retry_failed(client, &count) == SA_INVALID_STATE);
    CHECK(count == 42);
    CHECK(sa_client_sync_status(client, KEY("k"), &key_status) == SA_INVALID_STATE);
    CHECK(key_status == SA_KEY_STATUS_SYNCED);

    CHECK(sa_client_open(client) == SA_OK);
    CHECK(read_sync_state(client, &state) == SA_OK);
    CHECK(state.outbox_size == 0 && state.pending_count == 0 && state.queued_count == 0);
    CHECK(state.in_flight_count == 0 && state.acknowledged_count == 0 && state.failed_count == 0);
    CHECK(state.last_submitted_version == 0 && state.last_applied_remote_version == 0);
    CHECK(state.total_retries == 0 && state.conflict_count == 0);
    CHECK(read_tick(client, true, &tick) == SA_OK);
    CHECK(tick.retried_count == 0 && tick.pruned_count == 0 && tick.batch_size == 0);

    CHECK(sa_client_put(client, KEY("doc/1"), KEY("draft")) == SA_OK);
    CHECK(read_sync_state(client, &state) == SA_OK);
    CHECK(state.outbox_size == 1 && state.queued_count == 1);
    CHECK(state.last_submitted_version > 0);
    CHECK(read_tick(client, false, &tick) == SA_OK);
    CHECK(tick.batch_size == 0 && tick.retried_count == 0); /* no peer: nothing sent */
    CHECK(read_sync_state(client, &state) == SA_OK);
    CHECK(state.queued_count == 1 && state.in_flight_count == 0);

    CHECK(sa_client_sync_status(client, KEY("doc/1"), &key_status) == SA_OK);
    CHECK(key_status == SA_KEY_STATUS_WAITING_TO_SYNC);
    CHECK(strcmp(sa_key_status_string(key_status), "waiting_to_sync") == 0);
    key_status = SA_KEY_STATUS_SYNCED;
    CHECK(sa_client_sync_status(client, KEY("missing"), &key_status) == SA_NOT_FOUND);
    CHECK(strcmp(sa_last_error_context(), "missing") == 0);
    CHECK(key_status == SA_KEY_STATUS_SYNCED); /* untouched on error */
    CHECK(sa_client_sync_status(client, (const uint8_t *)"", 0, &key_status) ==
          SA_INVALID_ARGUMENT);

    sa_conflicts_t *conflicts = NULL;
    CHECK(sa_client_recent_conflicts(client, &conflicts) == SA_OK);
    CHECK(conflicts != NULL && conflicts->len == 0 && conflicts->items != NULL);
    sa_conflicts_free(conflicts);
    CHECK(sa_client_recent_conflicts(client, NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "out_conflicts") == 0);
    CHECK(sa_client_retry_expired(client, &count) == SA_OK && count == 0);
    CHECK(sa_client_prune_completed(client, &count) == SA_OK && count == 0);
    CHECK(sa_client_prune_failed(client, &count) == SA_OK && count == 0);
    CHECK(sa_client_queue_pending(client, &count) == SA_OK && count == 0);
    CHECK(sa_client_retry_failed(client, &count) == SA_OK && count == 0);
    CHECK(read_sync_state(client, &state) == SA_OK && state.queued_count == 1);

    /* NULL handles and out-parameters. */
    CHECK(sa_client_tick(client, false, NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "out_result") == 0);
    CHECK(sa_client_sync_state(client, NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "out_state") == 0);
    CHECK(sa_client_queue_pending(client, NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "out_count") == 0);
    CHECK(sa_client_retry_failed(client, NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "out_count") == 0);
    CHECK(sa_client_sync_status(client, KEY("doc/1"), NULL) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "out_status") == 0);
    CHECK(sa_client_sync_state(NULL, &no_state) == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "sa_client_sync_state: client is NULL"));
    CHECK(sa_client_tick(NULL, false, &no_tick) == SA_INVALID_ARGUMENT);
    sa_client_free(client);

    /* auto_queue off: a put stays pending until sa_client_queue_pending. */
    sa_options_t *o = memory_options("c-manual");
    CHECK(sa_options_set_bool(o, SA_OPTION_AUTO_QUEUE, false) == SA_OK);
    client = client_from(o);
    CHECK(sa_client_open(client) == SA_OK);
    CHECK(sa_client_put(client, KEY("draft"), KEY("v")) == SA_OK);
    CHECK(sa_client_sync_status(client, KEY("draft"), &key_status) == SA_OK);
    CHECK(key_status == SA_KEY_STATUS_SAVED_LOCALLY);
    CHECK(read_sync_state(client, &state) == SA_OK);
    CHECK(state.outbox_size == 1 && state.pending_count == 1 && state.queued_count == 0);
    CHECK(sa_client_queue_pending(client, &count) == SA_OK && count == 1);
    CHECK(read_sync_state(client, &state) == SA_OK);
    CHECK(state.pending_count == 0 && state.queued_count == 1);
    CHECK(sa_client_close(client) == SA_OK);
    sa_client_free(client);
}

/* A TCP port of 127.0.0.1 that was free a moment ago (0 when none could be bound). The
 * transport refuses port 0, so the caller picks one and retries when it is "in use". */
static uint16_t free_tcp_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    uint16_t port = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
}

/* A client with a WAL `dir/<id>.wal` and its transport started on 127.0.0.1 and a free
 * port (written to *port); NULL when none could be started. */
static sa_client_t *start_node(const char *dir, const char *id, char *wal, size_t wal_size,
                               uint16_t *port) {
    snprintf(wal, wal_size, "%s/%s.wal", dir, id);
    for (int attempt = 0; attempt < 20; attempt++) {
        sa_options_t *o = NULL;
        CHECK(sa_options_persistent(id, wal, &o) == SA_OK);
        uint16_t wanted = free_tcp_port();
        CHECK(sa_options_set_bool(o, SA_OPTION_ENABLE_TRANSPORT, true) == SA_OK);
        CHECK(sa_options_set_text(o, SA_OPTION_TRANSPORT_HOST, "127.0.0.1") == SA_OK);
        CHECK(sa_options_set_uint(o, SA_OPTION_TRANSPORT_PORT, wanted) == SA_OK);
        sa_client_t *client = client_from(o);
        if (client == NULL || sa_client_open(client) != SA_OK) {
            CHECK(!"a client opens");
            sa_client_free(client);
            return NULL;
        }
        if (sa_client_start_transport(client) == SA_OK) {
            CHECK(sa_client_transport_port(client, port) == SA_OK && *port == wanted);
            return client;
        }
        CHECK(contains_text(sa_last_error_message(), "in use"));
        sa_client_free(client);
    }
    CHECK(!"a free port was found");
    return NULL;
}

/* Makes `a` trust `b`'s key under `b`'s node id. */
static void trust(sa_client_t *a, sa_client_t *b) {
    sa_node_info_t *info = NULL;
    CHECK(sa_client_node_info(b, &info) == SA_OK);
    if (info != NULL) {
        CHECK(sa_client_trust_peer(a, info->node_id, info->fingerprint) == SA_OK);
    }
    sa_node_info_free(info);
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Transport and discovery errors, the peer list, and two clients syncing over loopback. */
static void test_network(const char *dir) {
    CHECK(strcmp(sa_peer_state_string(SA_PEER_STATE_AVAILABLE), "available") == 0);
    CHECK(strcmp(sa_peer_state_string(SA_PEER_STATE_CONNECTED), "connected") == 0);
    CHECK(strcmp(sa_peer_state_string(SA_PEER_STATE_STALE), "stale") == 0);
    CHECK(strcmp(sa_peer_state_string(SA_PEER_STATE_EXPIRED), "expired") == 0);
    CHECK(strcmp(sa_peer_state_string(SA_PEER_STATE_FAULTED), "faulted") == 0);
    CHECK(strcmp(sa_peer_state_string(SA_PEER_STATE_UNKNOWN), "unknown") == 0);
    CHECK(strcmp(sa_peer_state_string(9999), "unknown") == 0);
    sa_peers_free(NULL);

    /* Disabled: SA_TRANSPORT_ERROR / SA_DISCOVERY_ERROR; stopping is fine. */
    sa_client_t *off = client_from(memory_options("c-net-off"));
    CHECK(sa_client_start_transport(off) == SA_INVALID_STATE); /* closed */
    CHECK(sa_client_open(off) == SA_OK);
    CHECK(sa_client_start_transport(off) == SA_TRANSPORT_ERROR);
    CHECK(contains_text(sa_last_error_message(), "transport is disabled"));
    CHECK(!sa_client_transport_running(off));
    CHECK(sa_client_stop_transport(off) == SA_OK);
    size_t handled = 99;
    CHECK(sa_client_process_transport_events(off, 64, &handled) == SA_TRANSPORT_ERROR);
    CHECK(handled == 99);
    CHECK(sa_client_connect(off, "c-peer", "127.0.0.1", 4041) == SA_TRANSPORT_ERROR);
    CHECK(sa_client_start_discovery(off) == SA_DISCOVERY_ERROR);
    CHECK(contains_text(sa_last_error_message(), "discovery is disabled"));
    CHECK(sa_client_stop_discovery(off) == SA_OK);
    uint16_t discovery_port = 7;
    CHECK(sa_client_discovery_port(off, &discovery_port) == SA_DISCOVERY_ERROR);
    CHECK(discovery_port == 7);
    CHECK(!sa_client_discovery_running(off));
    sa_peers_t *peers = NULL;
    CHECK(sa_client_peers(off, &peers) == SA_TRANSPORT_ERROR);
    CHECK(peers == NULL);
    sa_network_stats_t *stats = NULL;
    CHECK(sa_client_network_stats(off, &stats) == SA_OK); /* zeros without a transport */
    CHECK(stats != NULL && stats->connections == 0 && stats->refused_own_origin == 0);
    sa_network_stats_free(stats);
    sa_client_free(off);

    char wal_a[512], wal_b[512];
    uint16_t port_a = 0, port_b = 0;
    sa_client_t *a = start_node(dir, "c-node-a", wal_a, sizeof wal_a, &port_a);
    sa_client_t *b = start_node(dir, "c-node-b", wal_b, sizeof wal_b, &port_b);
    if (a == NULL || b == NULL) {
        sa_client_free(a);
        sa_client_free(b);
        return;
    }
    CHECK(sa_client_transport_running(a));
    CHECK(sa_client_start_transport(a) == SA_OK); /* twice is fine */
    CHECK(sa_client_connect(a, NULL, "127.0.0.1", port_b) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "node_id") == 0);
    CHECK(sa_client_connect(a, "c-node-b", NULL, port_b) == SA_INVALID_ARGUMENT);
    CHECK(sa_client_connect(a, "has space", "127.0.0.1", port_b) == SA_INVALID_ARGUMENT);
    CHECK(sa_client_connect(a, "c-node-b", "127.0.0.1", 0) == SA_INVALID_ARGUMENT);
    CHECK(sa_client_process_transport_events(a, 64, NULL) == SA_INVALID_ARGUMENT);
    CHECK(sa_client_peers(a, NULL) == SA_INVALID_ARGUMENT);

    CHECK(sa_client_put(a, KEY("net/1"), KEY("one")) == SA_OK);
    CHECK(sa_client_put(a, KEY("net/2"), KEY("two")) == SA_OK);
    CHECK(sa_client_trust_peer(NULL, "x", "y") == SA_INVALID_ARGUMENT);
    CHECK(sa_client_trust_peer(a, "c-node-b", "not-a-fingerprint") == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "64 hex digits"));
    CHECK(sa_client_untrust_peer(a, "c-node-b") == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "not trusted"));
    CHECK(sa_client_connect(a, "c-node-b", "127.0.0.1", port_b) == SA_OK);

    /* Neither trusts the other yet: the connection is refused and counted, nothing syncs. */
    const double refusal_deadline = now_seconds() + 10.0;
    bool refused = false;
    for (int round = 0; round < 5000 && !refused && now_seconds() < refusal_deadline; round++) {
        CHECK(sa_client_process_transport_events(a, 64, &handled) == SA_OK);
        CHECK(sa_client_process_transport_events(b, 64, &handled) == SA_OK);
        sa_network_stats_t *b_stats = NULL;
        CHECK(sa_client_network_stats(b, &b_stats) == SA_OK);
        refused = b_stats != NULL && b_stats->untrusted_peers > 0;
        sa_network_stats_free(b_stats);
    }
    CHECK(refused);
    bool leaked = true;
    CHECK(sa_client_contains(b, KEY("net/1"), &leaked) == SA_OK);
    CHECK(!leaked);
    trust(a, b);
    trust(b, a);

    /* Drive both transports until B has A's data and A has its ACKs (at most ~10 s). */
    const double deadline = now_seconds() + 10.0;
    int done = 0;
    for (int round = 0; round < 5000 && !done && now_seconds() < deadline; round++) {
        size_t ha = 0, hb = 0;
        CHECK(sa_client_process_transport_events(a, 64, &ha) == SA_OK);
        CHECK(sa_client_process_transport_events(b, 0, &hb) == SA_OK);
        bool has = false;
        sa_sync_state_t state;
        done = sa_client_contains(b, KEY("net/2"), &has) == SA_OK && has &&
               read_sync_state(a, &state) == SA_OK && state.acknowledged_count >= 2;
        if (ha + hb == 0) {
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
        }
    }
    CHECK(done);
    CHECK(value_is(b, "net/1", "one"));
    stats = NULL;
    CHECK(sa_client_network_stats(a, &stats) == SA_OK);
    CHECK(stats != NULL && stats->connections == 1 && stats->connection_limit > 0);
    sa_network_stats_free(stats);

    CHECK(sa_client_peers(a, &peers) == SA_OK);
    CHECK(peers != NULL && peers->len == 1);
    if (peers != NULL && peers->len == 1) {
        const sa_peer_t *p = peers->items[0];
        CHECK(strcmp(p->node_id, "c-node-b") == 0);
        CHECK(strcmp(p->host, "127.0.0.1") == 0 && p->port == port_b);
        CHECK(p->state == SA_PEER_STATE_CONNECTED);
        CHECK(p->last_seen_ms > 0);
    }
    sa_peers_free(peers);

    /* The waiting call, and the background mode: B's loop runs on its own thread, A's
     * waiting call returns when B's frame arrives (well before its 10 s timeout). */
    CHECK(sa_client_wait_transport_events(a, 64, 10, NULL) == SA_INVALID_ARGUMENT);
    CHECK(!sa_client_background_running(b));
    CHECK(sa_client_start_background(b) == SA_OK);
    CHECK(sa_client_start_background(b) == SA_OK); /* twice is fine */
    CHECK(sa_client_background_running(b));
    CHECK(sa_client_put(b, KEY("bg/1"), KEY("from b")) == SA_OK);
    const double bg_start = now_seconds();
    bool has_bg = false;
    for (int round = 0; round < 100 && !has_bg && now_seconds() < bg_start + 9.0; round++) {
        size_t handled = 0;
        CHECK(sa_client_wait_transport_events(a, 64, 10000, &handled) == SA_OK);
        CHECK(sa_client_contains(a, KEY("bg/1"), &has_bg) == SA_OK);
    }
    CHECK(has_bg);
    CHECK(now_seconds() - bg_start < 5.0);
    CHECK(sa_client_stop_background(b) == SA_OK);
    CHECK(!sa_client_background_running(b));
    CHECK(sa_client_stop_background(b) == SA_OK); /* twice is fine */
    CHECK(sa_client_start_background(NULL) == SA_INVALID_ARGUMENT);
    CHECK(!sa_client_background_running(NULL));

    CHECK(sa_client_disconnect(a, "c-node-b", "127.0.0.1", port_b) == SA_OK);
    CHECK(sa_client_disconnect(a, "c-node-b", "127.0.0.1", port_b) == SA_INVALID_ARGUMENT);
    CHECK(contains_text(sa_last_error_message(), "not connected"));
    CHECK(sa_client_stop_transport(a) == SA_OK);
    CHECK(sa_client_stop_transport(a) == SA_OK);
    CHECK(!sa_client_transport_running(a));
    uint16_t stopped_port = 1;
    CHECK(sa_client_transport_port(a, &stopped_port) == SA_TRANSPORT_ERROR);
    CHECK(contains_text(sa_last_error_message(), "not running") && stopped_port == 1);
    CHECK(sa_client_close(b) == SA_OK);
    CHECK(!sa_client_transport_running(b));
    CHECK(sa_client_stop_transport(b) == SA_INVALID_STATE);
    sa_client_free(a);
    sa_client_free(b);
    remove_node_files(wal_a);
    remove_node_files(wal_b);
}

static void test_recovery(const char *wal) {
    sa_options_t *o = NULL;
    CHECK(sa_options_persistent("c-node", wal, &o) == SA_OK);
    sa_client_t *client = client_from(o);
    CHECK(sa_client_open(client) == SA_OK);
    size_t size = 0;
    CHECK(sa_client_size(client, &size) == SA_OK && size == 3);
    CHECK(value_is(client, "b/2", "two"));
    sa_bytes_t *value = NULL;
    CHECK(sa_client_get(client, KEY("app/name"), &value) == SA_NOT_FOUND);
    /* The unacknowledged operations of the first session wait in the outbox again. */
    sa_sync_state_t state;
    CHECK(read_sync_state(client, &state) == SA_OK);
    CHECK(state.outbox_size > 0 && state.queued_count == state.outbox_size);
    CHECK(state.last_submitted_version > 0);
    sa_key_status_t key_status = SA_KEY_STATUS_SYNCED;
    CHECK(sa_client_sync_status(client, KEY("b/2"), &key_status) == SA_OK);
    CHECK(key_status == SA_KEY_STATUS_WAITING_TO_SYNC);
    sa_tick_result_t tick;
    CHECK(read_tick(client, true, &tick) == SA_OK && tick.batch_size == 0);
    sa_client_free(client); /* closes */
}

/* The options for applications' tests: ephemeral ports read back, the manual clock (an
 * ACK timeout that waits for it) and a disk fault that fails one put. */
static void test_testing_options(const char *dir) {
    sa_options_t *o = memory_options("c-test-node");
    CHECK(sa_options_set_bool(o, SA_OPTION_ENABLE_TRANSPORT, true) == SA_OK);
    CHECK(sa_options_set_text(o, SA_OPTION_TRANSPORT_HOST, "127.0.0.1") == SA_OK);
    CHECK(sa_options_validate(o) == SA_INVALID_ARGUMENT); /* a plain port 0 */
    CHECK(strcmp(sa_last_error_context(), "transport_port") == 0);
    CHECK(sa_options_set_bool(o, SA_OPTION_EPHEMERAL_TRANSPORT_PORT, true) == SA_OK);
    CHECK(sa_options_set_bool(o, SA_OPTION_ENABLE_DISCOVERY, true) == SA_OK);
    CHECK(sa_options_set_text(o, SA_OPTION_DISCOVERY_HOST, "127.0.0.1") == SA_OK);
    CHECK(sa_options_set_bool(o, SA_OPTION_EPHEMERAL_DISCOVERY_PORT, true) == SA_OK);
    CHECK(sa_options_set_bool(o, SA_OPTION_MANUAL_CLOCK, true) == SA_OK);
    CHECK(sa_options_set_uint(o, SA_OPTION_ACK_TIMEOUT_MS, 1000) == SA_OK);
    CHECK(sa_options_set_bool(o, SA_OPTION_REQUIRE_ACK, true) == SA_OK);
    CHECK(sa_options_validate(o) == SA_OK);
    sa_client_t *c = client_from(o);
    CHECK(sa_client_open(c) == SA_OK);
    CHECK(sa_client_start_transport(c) == SA_OK);
    CHECK(sa_client_start_discovery(c) == SA_OK);
    uint16_t transport_port = 0, discovery_port = 0;
    CHECK(sa_client_transport_port(c, &transport_port) == SA_OK && transport_port != 0);
    CHECK(sa_client_discovery_port(c, &discovery_port) == SA_OK && discovery_port != 0);
    CHECK(sa_client_add_discovery_target(c, "127.0.0.1", transport_port) == SA_OK);
    CHECK(sa_client_add_discovery_target(c, NULL, 9400) == SA_INVALID_ARGUMENT);
    CHECK(sa_client_add_discovery_target(c, "127.0.0.1", 0) == SA_INVALID_ARGUMENT);
    CHECK(strcmp(sa_last_error_context(), "127.0.0.1:0") == 0);
    CHECK(sa_client_advance_clock(NULL, 1) == SA_INVALID_ARGUMENT);
    CHECK(sa_client_advance_clock(c, 5000) == SA_OK);
    sa_client_free(c);

    sa_client_t *plain = client_from(memory_options("c-test-plain"));
    CHECK(sa_client_advance_clock(plain, 1) == SA_INVALID_STATE);
    CHECK(contains_text(sa_last_error_message(), "manual_clock"));
    sa_client_free(plain);

    char wal[512];
    snprintf(wal, sizeof wal, "%s/c-faulty.wal", dir);
    sa_options_t *p = NULL;
    CHECK(sa_options_persistent("c-faulty", wal, &p) == SA_OK);
    CHECK(sa_options_set_uint(p, SA_OPTION_FAIL_WRITE_AT, 2) == SA_OK);
    sa_client_t *f = client_from(p);
    CHECK(sa_client_open(f) == SA_OK);
    CHECK(sa_client_put(f, KEY("k/1"), (const uint8_t *)"1", 1) == SA_OK);
    CHECK(sa_client_put(f, KEY("k/2"), (const uint8_t *)"2", 1) == SA_IO_ERROR);
    CHECK(contains_text(sa_last_error_message(), "injected write failure"));
    CHECK(value_is(f, "k/1", "1"));
    sa_bytes_t *value = NULL;
    CHECK(sa_client_get(f, KEY("k/2"), &value) == SA_NOT_FOUND);
    CHECK(sa_client_close(f) == SA_IO_ERROR); /* the log failed; closed all the same */
    CHECK(sa_client_open(f) == SA_OK);
    CHECK(value_is(f, "k/1", "1"));
    CHECK(sa_client_put(f, KEY("k/2"), (const uint8_t *)"2", 1) == SA_OK); /* once */
    sa_client_free(f);
    remove_node_files(wal);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/softadastra-c-test-XXXXXX", tmp != NULL && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    char wal[300];
    snprintf(wal, sizeof wal, "%s/c.wal", dir);

    test_version_and_status_strings();
    test_options();
    test_parity_with_the_description();
    test_null_handling();
    test_missing_directory(dir);
    test_key_status_strings();
    test_sync();
    test_store(wal);
    test_recovery(wal);
    test_network(dir);
    test_testing_options(dir);

    /* The node's identity key was made next to its WAL, readable by its owner only. */
    char key[320];
    snprintf(key, sizeof key, "%s.key", wal);
    struct stat key_stat;
    CHECK(stat(key, &key_stat) == 0 && (key_stat.st_mode & 0777) == 0600);
    remove_node_files(wal);
    if (rmdir(dir) != 0) {
        fprintf(stderr, "cannot remove %s: something unexpected was created in it\n", dir);
        failures++;
    }
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("c_api_test: all checks passed\n");
    return 0;
}
