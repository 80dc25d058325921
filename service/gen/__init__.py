"""Code generated from proto/ by service/protogen.py; do not edit."""
