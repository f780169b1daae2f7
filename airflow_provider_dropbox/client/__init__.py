"""Airflow-free Dropbox API v2 client (requests + tenacity); the hook, operators and mirror build on it."""

from airflow_provider_dropbox.client import errors
from airflow_provider_dropbox.client.api import DropboxClient, encode_arg
from airflow_provider_dropbox.client.auth import build_authorize_url, exchange_code, generate_pkce_pair
from airflow_provider_dropbox.client.config import Credentials, Endpoints
from airflow_provider_dropbox.client.content_hash import ContentHasher, content_hash_bytes, content_hash_file
from airflow_provider_dropbox.client.progress import ProgressLogger
from airflow_provider_dropbox.client.retry import RetryPolicy

__all__ = [
    "ContentHasher",
    "Credentials",
    "DropboxClient",
    "Endpoints",
    "ProgressLogger",
    "RetryPolicy",
    "build_authorize_url",
    "content_hash_bytes",
    "content_hash_file",
    "encode_arg",
    "errors",
    "exchange_code",
    "generate_pkce_pair",
]
