/*
 * rpc_unary — one blocking unary call without a loop (rpc.h), for
 * command-line tools (syncctl): its own completion queue, channel and
 * deadline, all released before it returns.
 */
#include "common/rpc_internal.h"

#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rpc_unary_call(const char *target, const char *method, const struct rpc_creds *creds,
                   const uint8_t *req, size_t req_len, uint32_t deadline_ms, uint8_t **resp,
                   size_t *resp_len, char *err, size_t errlen) {
  char dummy[1];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof(dummy);
  }
  err[0] = '\0';
  if (!target || !method || !creds || (!req && req_len) || !resp || !resp_len) {
    snprintf(err, errlen, "invalid argument");
    return RPC_ERR_INVALID;
  }
  *resp = NULL;
  *resp_len = 0;
  rpc_log_init();
  grpc_init();
  grpc_channel_credentials *cc = NULL;
  int rc = rpc_channel_creds(creds, &cc, err, errlen);
  if (rc < 0) {
    grpc_shutdown();
    return rc;
  }
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  grpc_channel *ch = rpc_channel_new(target, cc, creds->server_name_override);
  gpr_timespec deadline =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                   gpr_time_from_millis(deadline_ms ? deadline_ms : 10000, GPR_TIMESPAN));
  grpc_call *call =
      grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                               grpc_slice_from_static_string(method), NULL, deadline, NULL);
  grpc_metadata_array md_initial, md_trailing;
  grpc_metadata_array_init(&md_initial);
  grpc_metadata_array_init(&md_trailing);
  grpc_slice payload = grpc_slice_from_copied_buffer((const char *)req, req_len);
  grpc_byte_buffer *send_bb = grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);
  grpc_byte_buffer *recv_bb = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send_bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv_bb;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &md_trailing;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  int tag = 0;
  if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
    snprintf(err, errlen, "cannot start the call");
    rc = RPC_ERR_INVALID;
  } else {
    /* The call's own deadline ends it; the queue only waits for that. */
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type != GRPC_OP_COMPLETE || !ev.success) {
      snprintf(err, errlen, "call failed");
      rc = GRPC_STATUS_INTERNAL;
    } else if (status != GRPC_STATUS_OK) {
      char *d = grpc_slice_to_c_string(details);
      snprintf(err, errlen, "%s", d);
      gpr_free(d);
      rc = (int)status;
    } else if (!recv_bb) {
      snprintf(err, errlen, "no response message");
      rc = GRPC_STATUS_INTERNAL;
    } else {
      grpc_slice msg = rpc_read_all(recv_bb);
      size_t n = GRPC_SLICE_LENGTH(msg);
      *resp = malloc(n ? n : 1);
      if (!*resp) {
        rc = RPC_ERR_NOMEM;
      } else {
        memcpy(*resp, GRPC_SLICE_START_PTR(msg), n);
        *resp_len = n;
        rc = 0;
      }
      grpc_slice_unref(msg);
    }
  }
  if (recv_bb) grpc_byte_buffer_destroy(recv_bb);
  grpc_byte_buffer_destroy(send_bb);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&md_initial);
  grpc_metadata_array_destroy(&md_trailing);
  grpc_call_unref(call);
  grpc_channel_destroy(ch);
  grpc_channel_credentials_release(cc);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  grpc_shutdown();
  return rc;
}
