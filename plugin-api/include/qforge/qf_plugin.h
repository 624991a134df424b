/* qforge plugin C ABI, version 1.0.
 *
 * The whole contract between the qforge host and a quantizer plugin. C99, self-contained: it
 * includes only <stdint.h>, <stddef.h> and <dlpack/dlpack.h>. No boolean type, no C++ types, no
 * exceptions, no STL cross this line.
 *
 * Rules (see plugin-api/README.md for the long form):
 *  - One exported symbol: qf_plugin_entry. It negotiates the ABI version and fills qf_plugin_info;
 *    it does no work (no CUDA init, no threads). Real set-up happens in qf_plugin_info.init.
 *  - Every struct either side fills starts with `uint32_t struct_size; uint32_t abi_version;`.
 *    Structs and tables only grow at the end (minor bump, members tagged "since 1.N"). A reader
 *    touches a member only when struct_size covers it. A NULL hook means "default behaviour".
 *  - Fallible calls return qf_status*: NULL on success, else a status made by host->status_new.
 *    The host owns and frees every status; a plugin never frees or inspects one it returns.
 *  - Control plane is UTF-8 JSON text (configs, environment, device maps, returned
 *    quantization_config); data plane is DLTensor views with names.
 *  - Ownership of every pointer parameter is stated as: borrowed (valid until the call returns
 *    unless said otherwise), host-owned, or copied.
 *  - Plugins never write to stdout/stderr: they log through host->log.
 */
#ifndef QFORGE_QF_PLUGIN_H_
#define QFORGE_QF_PLUGIN_H_

#include <dlpack/dlpack.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ============================== versions ============================== */

#define QF_ABI_MAJOR 1
#define QF_ABI_MINOR 0
/* A packed ABI version: major in the high 16 bits, minor in the low 16 bits. */
#define QF_ABI_MAKE_VERSION(major, minor) ((((uint32_t)(major)) << 16) | ((uint32_t)(minor)))
#define QF_ABI_VERSION_MAJOR(v) (((uint32_t)(v)) >> 16)
#define QF_ABI_VERSION_MINOR(v) (((uint32_t)(v)) & 0xFFFFu)
#define QF_ABI_VERSION QF_ABI_MAKE_VERSION(QF_ABI_MAJOR, QF_ABI_MINOR)

/* The one symbol a plugin library exports. */
#define QF_PLUGIN_ENTRY_SYMBOL "qf_plugin_entry"

#if defined(_WIN32)
#define QF_PLUGIN_EXPORT __declspec(dllexport)
#else
#define QF_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/* ============================== status ============================== */

/* Closed set of status codes (stored as int32_t wherever they cross). */
#define QF_CODE_OK 0
#define QF_CODE_INVALID_ARGUMENT 1 /* bad config, tensor, shape or dtype from the caller */
#define QF_CODE_FAILED_PRECONDITION \
  2                                  /* environment cannot serve the request (no GPU, cc too low) */
#define QF_CODE_UNIMPLEMENTED 3      /* the hook or this combination is not implemented */
#define QF_CODE_RESOURCE_EXHAUSTED 4 /* out of host or device memory */
#define QF_CODE_DEVICE_ERROR 5       /* a CUDA/HIP call failed */
#define QF_CODE_INTERNAL 6           /* a bug in the plugin (including an escaped exception) */
#define QF_CODE_CANCELLED 7          /* the call saw qf_call_ctx.is_cancelled and stopped */

/* Opaque, host-owned. Made only by qf_host_api.status_new. */
typedef struct qf_status qf_status;

/* ============================== logging ============================== */

#define QF_LOG_TRACE 0
#define QF_LOG_DEBUG 1
#define QF_LOG_INFO 2
#define QF_LOG_WARN 3
#define QF_LOG_ERROR 4
#define QF_LOG_OFF 6

/* ============================== dtypes ============================== */

/* DLPack type codes newer than the dlpack.h some systems ship (Debian has 0.6). The values are
 * those of DLPack 1.x, so a DLTensor made by a newer producer means the same thing. */
#define QF_DL_BOOL 6
#define QF_DL_FLOAT8_E4M3FN 10
#define QF_DL_FLOAT8_E5M2 12

/* ============================== forward declarations ============================== */

/* A plugin's per-config quantizer instance. Defined by the plugin; opaque to the host. */
typedef struct qf_quantizer qf_quantizer;

/* ============================== text sink ============================== */

/* Where a plugin writes a string result (JSON or plain text). The host copies the bytes during
 * the call; the plugin may free its buffer as soon as write returns.
 * Thread-safety: one sink is used by one call on one thread. */
typedef struct qf_text_sink {
  uint32_t struct_size;
  uint32_t abi_version;
  void* ctx; /* host-owned */
  /* Copies `len` bytes of UTF-8 text (need not be NUL-terminated). Calling it again replaces
   * the previous text. */
  qf_status* (*write)(void* ctx, const char* utf8, size_t len);
} qf_text_sink;

/* ============================== tensors ============================== */

/* A tensor view with a name. The name is relative to the module ("weight", "weight.absmax",
 * "SCB"). Frozen layout: arrays of qf_named_tensor never change shape in ABI major 1; the
 * versioned container is qf_tensor_list. */
typedef struct qf_named_tensor {
  const char* name;       /* borrowed, NUL-terminated UTF-8 */
  const DLTensor* tensor; /* borrowed, read-only */
} qf_named_tensor;

typedef struct qf_tensor_list {
  uint32_t struct_size;
  uint32_t abi_version;
  int64_t count;
  const qf_named_tensor* items; /* borrowed: `count` entries */
} qf_tensor_list;

/* Output tensors are allocated by the host, so the plugin writes straight into host memory and
 * no deleter ever points into plugin code.
 * Thread-safety: a sink belongs to one hook call; it may be used from threads the plugin runs
 * inside that call (e.g. parallel_for workers) only if they allocate one at a time. */
typedef struct qf_tensor_sink {
  uint32_t struct_size;
  uint32_t abi_version;
  void* ctx; /* host-owned */
  /* Allocates a contiguous, zero-filled tensor called `name` (copied) with `ndim` dims of
   * `shape` (copied) on `device`. On success *out is host-owned and valid until the hook that
   * received the sink returns. Allocating a name twice is INVALID_ARGUMENT. */
  qf_status* (*allocate)(void* ctx, const char* name, DLDataType dtype, int32_t ndim,
                         const int64_t* shape, DLDevice device, DLTensor** out);
} qf_tensor_sink;

/* ============================== call context ============================== */

/* Passed to compute hooks. Compute hooks use the host's stream, never synchronise it, and never
 * allocate device memory on their own. */
typedef struct qf_call_ctx {
  uint32_t struct_size;
  uint32_t abi_version;
  DLDevice device; /* where inputs live and outputs must go */
  void* stream;    /* borrowed cudaStream_t / hipStream_t; NULL for CPU or the default stream */
  void* cancel_ctx;
  /* Returns non-zero once the host wants the call to stop; the hook then returns a status with
   * QF_CODE_CANCELLED. May be NULL (never cancelled). Cheap; safe from any thread. */
  int32_t (*is_cancelled)(void* cancel_ctx);
  int32_t num_threads; /* upper bound the host grants this call; parallel_for honours it */
} qf_call_ctx;

/* ============================== module description ============================== */

#define QF_MODULE_LINEAR 0 /* nn.Linear: weight [out, in] */
#define QF_MODULE_CONV1D 1 /* GPT-2 Conv1D: weight stored [in, out] */
#define QF_MODULE_EMBEDDING 2
#define QF_MODULE_OTHER 3

typedef struct qf_module_info {
  uint32_t struct_size;
  uint32_t abi_version;
  const char* name; /* borrowed: full module name, e.g. "model.layers.0.mlp.up_proj" */
  int32_t kind;     /* QF_MODULE_* */
  int32_t has_bias; /* 0 or 1 */
  int64_t in_features;
  int64_t out_features;
  DLDataType weight_dtype; /* dtype of the unquantized weight in the checkpoint */
  const char* extra_json; /* borrowed, may be NULL: architecture-map facts, e.g. {"tag":"q_proj"} */
} qf_module_info;

/* ============================== host services ============================== */

/* Called by parallel_for on host threads for a sub-range [begin, end). */
typedef qf_status* (*qf_range_fn)(void* user, int64_t begin, int64_t end);

/* The services table the host hands each plugin. Host-owned, valid for the life of the process
 * (the host never unloads a plugin). One table per plugin: the host knows who is logging.
 * Thread-safety: every function is safe to call from any thread. */
typedef struct qf_host_api {
  uint32_t struct_size;
  uint32_t abi_version;
  void* ctx; /* host-owned; pass back as the first argument */
  /* Makes a status: what failed / why (actual vs expected, with values) / how to fix. Copies
   * all three strings; NULL strings are treated as "". Returns a host-owned status. */
  qf_status* (*status_new)(void* ctx, int32_t code, const char* what, const char* why,
                           const char* fix);
  /* Logs one message (copied) at QF_LOG_* `level` under `component` (copied; NULL = plugin id). */
  void (*log)(void* ctx, int32_t level, const char* component, const char* utf8_msg);
  /* Messages below this level are dropped: check it before formatting. The host may raise or
   * lower it at any time; read it at each use. */
  volatile int32_t min_log_level;
  /* Runs fn over [0, n) split into chunks of at least `grain` items on the host's thread pool
   * (at most ctx->num_threads threads when ctx is not NULL) and returns after all chunks end.
   * Returns the first non-NULL status a chunk returned (the others are freed by the host).
   * Chunks of one call may run concurrently; fn must be reentrant. */
  qf_status* (*parallel_for)(void* ctx, const qf_call_ctx* call, int64_t n, int64_t grain,
                             qf_range_fn fn, void* user);
} qf_host_api;

/* ============================== method hook table ============================== */

/* qf_method.flags */
#define QF_METHOD_REQUIRES_CALIBRATION (1u << 0) /* quantize needs calibration statistics */
#define QF_METHOD_SERIALIZABLE (1u << 1)         /* quantized tensors can be saved */
#define QF_METHOD_TRAINABLE (1u << 2)            /* adapters can train on top (PEFT) */
#define QF_METHOD_PREQUANTIZED_ONLY (1u << 3)    /* only loads checkpoints quantized elsewhere */

/* One quantization method (one `quant_method` string) of a plugin. The hooks mirror the
 * HfQuantizer lifecycle of HF Transformers. Plugin-owned and immutable; valid for the life of
 * the process.
 *
 * Threading: create/destroy and the configuration hooks are called from one thread at a time per
 * instance. quantize, dequantize and linear_forward are reentrant: the host may call them
 * concurrently on one instance for different modules. */
typedef struct qf_method {
  uint32_t struct_size;
  uint32_t abi_version;
  const char* quant_method; /* e.g. "bitsandbytes_4bit"; must equal the manifest's */
  uint32_t flags;           /* QF_METHOD_* */
  uint32_t reserved0;       /* 0 */

  /* Makes an instance for one resolved quantization_config (borrowed JSON object text). An
   * invalid config is INVALID_ARGUMENT naming the key. *out is released with destroy. */
  qf_status* (*create)(const char* config_json, qf_quantizer** out);
  /* Releases an instance; accepts NULL. */
  void (*destroy)(qf_quantizer* self);

  /* Fails fast, before any weight is read, when this machine or request cannot be served.
   * env_json: the host's environment probe; request_json: {"pre_quantized", "dtype",
   * "device", "device_map", ...}. Returns FAILED_PRECONDITION (environment) or
   * INVALID_ARGUMENT (request). NULL hook: always valid. */
  qf_status* (*validate_environment)(qf_quantizer* self, const char* env_json,
                                     const char* request_json);
  /* dtype: torch dtype name ("float16", "bfloat16", "float32") or "" for none given. Writes the
   * dtype to use. NULL hook: unchanged. */
  qf_status* (*update_dtype)(qf_quantizer* self, const char* dtype, qf_text_sink* out);
  /* device_map_json: a JSON object ({"": "cpu"}, {"model.layers.0": "cuda:0", ...}) or null.
   * Writes the map to use. NULL hook: unchanged. */
  qf_status* (*update_device_map)(qf_quantizer* self, const char* device_map_json,
                                  qf_text_sink* out);
  /* max_memory_json: {"cpu": bytes, "cuda:0": bytes}. Writes the adjusted budget. NULL: same. */
  qf_status* (*adjust_max_memory)(qf_quantizer* self, const char* max_memory_json,
                                  qf_text_sink* out);
  /* Sets *out_needed to 1 when the module should be quantized, 0 when not, and may write the
   * reason for 0 to `reason` (NULL allowed). NULL hook: linear and conv1d modules are. */
  qf_status* (*needs_quantization)(qf_quantizer* self, const qf_module_info* module,
                                   int32_t* out_needed, qf_text_sink* reason);
  /* Writes the tensors quantize will produce for `module` as JSON:
   * {"tensors":[{"name":"weight","dtype":"uint8","shape":[8192,1]}, ...]}. Dtype names are
   * safetensors' ("U8", "F32", ...). Used by planning and conformance checks. */
  qf_status* (*describe_quantized)(qf_quantizer* self, const qf_module_info* module,
                                   qf_text_sink* out);
  /* Quantizes one module. weight: [out, in] (Conv1D: [in, out]), read-only; bias may be NULL;
   * calibration may be NULL or hold named statistics ("hessian", "input_abs_mean", ...).
   * Every output tensor is allocated through `out` with its name relative to the module. */
  qf_status* (*quantize)(qf_quantizer* self, const qf_call_ctx* call, const qf_module_info* module,
                         const DLTensor* weight, const DLTensor* bias,
                         const qf_tensor_list* calibration, qf_tensor_sink* out);
  /* Checks a pre-quantized module's tensors (names, dtypes, shapes) before loading it. */
  qf_status* (*check_quantized)(qf_quantizer* self, const qf_module_info* module,
                                const qf_tensor_list* tensors);
  /* Rebuilds the dense weight from the quantized tensors into out ("weight", the module's
   * original dtype unless the sink is asked otherwise). */
  qf_status* (*dequantize)(qf_quantizer* self, const qf_call_ctx* call,
                           const qf_module_info* module, const qf_tensor_list* tensors,
                           qf_tensor_sink* out);
  /* y = x @ W^T + bias with the quantized weight. x: [..., in]; y: [..., out], allocated by the
   * host, same dtype as x. bias may be NULL. NULL hook: the host dequantizes and multiplies. */
  qf_status* (*linear_forward)(qf_quantizer* self, const qf_call_ctx* call,
                               const qf_module_info* module, const qf_tensor_list* tensors,
                               const DLTensor* x, const DLTensor* bias, DLTensor* y);
  /* Writes the quantization_config JSON object to store in config.json, given the model's
   * config.json (borrowed). */
  qf_status* (*postprocess)(qf_quantizer* self, const char* model_config_json,
                            qf_text_sink* quantization_config_out);
} qf_method;

/* ============================== entry ============================== */

/* What the host tells the plugin at entry. Host-owned; valid for the life of the process. */
typedef struct qf_host_info {
  uint32_t struct_size;
  uint32_t abi_version;     /* the host's own (newest) ABI version */
  uint32_t min_abi;         /* oldest packed ABI version the host speaks */
  uint32_t max_abi;         /* newest packed ABI version the host speaks */
  const char* host_version; /* "0.1.0" */
  const qf_host_api* api;
} qf_host_info;

/* What the plugin tells the host. The host zero-fills it and sets struct_size to what it
 * knows; the plugin sets abi_version to the version it chose and fills only members that
 * struct_size covers. Every pointer is plugin-owned and valid for the life of the process. */
typedef struct qf_plugin_info {
  uint32_t struct_size;
  uint32_t abi_version;  /* negotiated: min <= v <= max of both sides, same major */
  const char* plugin_id; /* must equal the manifest's id */
  const char* plugin_version;
  int32_t method_count;
  int32_t reserved0;
  const qf_method* const* methods; /* method_count entries */
  /* Real set-up (threads, device discovery). Called once, lazily, before the first create.
   * options_json: {} for now. NULL: nothing to do. */
  qf_status* (*init)(const char* options_json);
  /* Called once before process exit; releases what init made. NULL: nothing to do. */
  void (*shutdown)(void);
} qf_plugin_info;

/* Entry point. Negotiates: picks the highest version both sides speak, or returns
 * FAILED_PRECONDITION naming the host version it needs. Does no other work. */
typedef qf_status* (*qf_plugin_entry_fn)(const qf_host_info* host, qf_plugin_info* out);

QF_PLUGIN_EXPORT qf_status* qf_plugin_entry(const qf_host_info* host, qf_plugin_info* out);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QFORGE_QF_PLUGIN_H_ */
