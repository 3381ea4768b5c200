//! A Kafka message's headers read through librdkafka's C API. rdkafka's own reader
//! (`Headers::iter`, 0.38) takes each key as UTF-8 and panics on other bytes, which
//! any client but Java's can write: one such record stopped a mirror for good. Here
//! a key is its bytes, made text as Kafka's Java client makes it (invalid sequences
//! become U+FFFD). The C API gives keys up to their first NUL byte: a key holding one
//! arrives cut there.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::ptr;

use rdkafka::bindings as rd;
use rdkafka::message::BorrowedMessage;

/// The headers of `msg`, in order: each key and value (`None`: a null value).
pub(crate) fn headers_of<'a>(msg: &'a BorrowedMessage<'_>) -> Vec<(String, Option<&'a [u8]>)> {
    let mut headers = ptr::null_mut();
    // SAFETY: `msg.ptr()` is the message `msg` holds alive for 'a. librdkafka sets
    // `headers` to the message's own header list (owned by the message, not to be
    // freed here) or leaves it null with an error.
    let err = unsafe { rd::rd_kafka_message_headers(msg.ptr(), &mut headers) };
    if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for idx in 0.. {
        let (mut name, mut value, mut size) = (ptr::null(), ptr::null(), 0usize);
        // SAFETY: `headers` is the message's live header list; librdkafka fills the
        // three out-parameters for an index it holds, and errs past the last one.
        let err =
            unsafe { rd::rd_kafka_header_get_all(headers, idx, &mut name, &mut value, &mut size) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            break;
        }
        // SAFETY: librdkafka's header names are NUL-terminated and live as long as the
        // message; a non-null value points at `size` bytes owned by the message.
        let key = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value = (!value.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
        out.push((String::from_utf8_lossy(key).into_owned(), value));
    }
    out
}
