import boto3
import redis
from pymongo import MongoClient


def test_servers_answer(redis_url, mongo_url, sqs_url):
    assert redis.Redis.from_url(redis_url).ping()
    assert MongoClient(mongo_url).admin.command("ping")["ok"] == 1
    sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x")
    url = sqs.create_queue(QueueName="smoke")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="hi")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "hi"
