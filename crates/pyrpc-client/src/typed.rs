//! Typed calls: [`Client`] methods sending Rust values and reading the reply
//! as a Rust type, through serde.

use pyrpc_proto::{Args, Shape, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::Client;
use crate::config::CallOptions;
use crate::error::CallError;

/// The positional arguments `args` stands for: a tuple is the argument list,
/// `()` is none, any other value is the one argument ([`Shape`]).
pub(crate) fn typed_args<A: Serialize + ?Sized>(args: &A) -> Result<Args, CallError> {
    let shape = Shape::of(args);
    let value = pyrpc_proto::to_value(args)?;
    Ok(match (shape, value) {
        (Shape::Unit, _) => Args::new(),
        (Shape::Tuple, Value::Tuple(items)) => Args::positional(items),
        (_, one) => Args::positional([one]),
    })
}

impl Client {
    /// Calls `method` with Rust values and reads the reply as `R`, both
    /// through serde ([`pyrpc_proto::to_value`], [`pyrpc_proto::from_value`]).
    ///
    /// `args` is a tuple of the positional arguments (`(a, b)`), `()` for
    /// none; any other value (`"Py"`, a struct, a `Vec`, `None`) is sent as
    /// the one argument. A single tuple argument is written `((1, 2),)`.
    ///
    /// # Errors
    ///
    /// As [`Client::call`], plus [`CallError::Typed`] when the reply does
    /// not fit `R` (naming the path that did not fit).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(client: pyrpc_client::Client) -> Result<(), pyrpc_client::CallError> {
    /// use std::collections::HashMap;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    /// struct Point { x: i64, y: i64 }
    ///
    /// // The Python `echo(*args, **kwargs)` returns `(args, kwargs)`.
    /// let (args, _kwargs): ((Point, String), HashMap<String, i64>) =
    ///     client.call_typed("echo", (Point { x: 1, y: 2 }, "p")).await?;
    /// assert_eq!(args.0, Point { x: 1, y: 2 });
    /// // One argument needs no tuple.
    /// let hello: String = client.call_typed("greet", "Py").await?;
    /// # Ok(()) }
    /// ```
    pub async fn call_typed<A, R>(&self, method: &str, args: A) -> Result<R, CallError>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        self.call_typed_with(method, args, &CallOptions::default())
            .await
    }

    /// [`Client::call_typed`] with `opts` overriding the client's settings.
    ///
    /// # Errors
    ///
    /// As [`Client::call_typed`].
    pub async fn call_typed_with<A, R>(
        &self,
        method: &str,
        args: A,
        opts: &CallOptions,
    ) -> Result<R, CallError>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let ret = self.call_with(method, typed_args(&args)?, opts).await?;
        Ok(pyrpc_proto::from_value(ret)?)
    }

    /// [`Client::call_typed`] as a non-blocking call ([`Client::nb_call`]).
    ///
    /// # Errors
    ///
    /// As [`Client::nb_call`], plus [`CallError::Typed`].
    pub async fn nb_call_typed<A, R>(&self, method: &str, args: A) -> Result<R, CallError>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        self.nb_call_typed_with(method, args, &CallOptions::default())
            .await
    }

    /// [`Client::nb_call_typed`] with `opts` overriding the client's settings.
    ///
    /// # Errors
    ///
    /// As [`Client::nb_call_typed`].
    pub async fn nb_call_typed_with<A, R>(
        &self,
        method: &str,
        args: A,
        opts: &CallOptions,
    ) -> Result<R, CallError>
    where
        A: Serialize,
        R: DeserializeOwned,
    {
        let ret = self.nb_call_with(method, typed_args(&args)?, opts).await?;
        Ok(pyrpc_proto::from_value(ret)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_is_one_argument_and_a_tuple_is_the_list() {
        assert_eq!(typed_args(&"a").expect("str").args, [Value::from("a")]);
        assert_eq!(typed_args(&None::<i64>).expect("none").args, [Value::None]);
        assert_eq!(typed_args(&vec![1, 2]).expect("vec").args.len(), 1);
        assert_eq!(typed_args(&(1, "a")).expect("tuple").args.len(), 2);
        assert_eq!(typed_args(&((1, 2),)).expect("one tuple").args.len(), 1);
        assert!(typed_args(&()).expect("unit").args.is_empty());
    }
}
