// A gRPC C-core server (Debian's libgrpc) that answers every unary call with an empty message and
// stores nothing: the C core's own cost a call, for Scripts/grpc-core-floor/run.sh.
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/byte_buffer.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int stage;  // 0: waiting for a call; 1: message received; 2: answered
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array request_metadata;
  grpc_byte_buffer *request;
  int cancelled;
} Call;

static grpc_server *server;
static grpc_completion_queue *queue;

static void request(Call *c) {
  memset(c, 0, sizeof *c);
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->request_metadata);
  grpc_server_request_call(server, &c->call, &c->details, &c->request_metadata, queue, queue, c);
}

int main(int argc, char **argv) {
  const char *address = argc > 1 ? argv[1] : "unix:/tmp/cspike.sock";
  int slots = argc > 2 ? atoi(argv[2]) : 32;
  grpc_init();
  queue = grpc_completion_queue_create_for_next(NULL);
  server = grpc_server_create(NULL, NULL);
  grpc_server_register_completion_queue(server, queue, NULL);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  if (!grpc_server_add_http2_port(server, address, creds)) { fprintf(stderr, "cannot listen on %s\n", address); return 1; }
  grpc_server_start(server);
  fprintf(stderr, "listening on %s\n", address);
  Call *calls = calloc(slots, sizeof(Call));
  for (int i = 0; i < slots; i++) request(&calls[i]);
  grpc_byte_buffer *empty = grpc_raw_byte_buffer_create(NULL, 0);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(queue, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    Call *c = ev.tag;
    if (c->stage == 0) {
      c->stage = 1;
      grpc_op ops[2];
      memset(ops, 0, sizeof ops);
      ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
      ops[1].op = GRPC_OP_RECV_MESSAGE;
      ops[1].data.recv_message.recv_message = &c->request;
      grpc_call_start_batch(c->call, ops, 2, c, NULL);
    } else if (c->stage == 1) {
      c->stage = 2;
      if (c->request) grpc_byte_buffer_destroy(c->request);
      c->request = NULL;
      grpc_op ops[3];
      memset(ops, 0, sizeof ops);
      ops[0].op = GRPC_OP_SEND_MESSAGE;
      ops[0].data.send_message.send_message = empty;
      ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
      ops[1].data.send_status_from_server.status = GRPC_STATUS_OK;
      ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
      ops[2].data.recv_close_on_server.cancelled = &c->cancelled;
      grpc_call_start_batch(c->call, ops, 3, c, NULL);
    } else {
      grpc_call_unref(c->call);
      grpc_call_details_destroy(&c->details);
      grpc_metadata_array_destroy(&c->request_metadata);
      request(c);
    }
  }
}
