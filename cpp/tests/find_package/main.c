/* An application using the installed C library: open a memory-only client, put, get. */
#include <softadastra.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    sa_options_t *options = NULL;
    sa_client_t *client = NULL;
    sa_bytes_t *value = NULL;
    if (sa_options_memory_only("consumer-c", &options) != SA_OK ||
        sa_client_new(options, &client) != SA_OK || sa_client_open(client) != SA_OK ||
        sa_client_put(client, (const uint8_t *)"k", 1, (const uint8_t *)"from C", 6) != SA_OK ||
        sa_client_get(client, (const uint8_t *)"k", 1, &value) != SA_OK) {
        fprintf(stderr, "failed: %s\n", sa_last_error_message());
        sa_options_free(options);
        sa_client_free(client);
        return 1;
    }
    printf("c value: %.*s (library %s)\n", (int)value->len, (const char *)value->data, sa_version());
    sa_bytes_free(value);
    sa_options_free(options);
    sa_client_free(client);
    return 0;
}
