//! Creates the queues and tables that `template.yaml` declares, on a moto server, and
//! resolves each function's environment from the template: local tooling never repeats a
//! resource name the template already gives.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_norway::Value;

use crate::project_root;

/// A queue created from the template.
#[derive(Debug, Clone)]
pub struct QueueRef {
    pub url: String,
    pub arn: String,
}

/// The template's resources as created on the local services.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    template: Value,
    /// Logical id → table name.
    pub tables: HashMap<String, String>,
    /// Logical id → queue.
    pub queues: HashMap<String, QueueRef>,
}

/// Every function of the template: its binary (the crate under `functions/`) and its
/// logical id.
pub const FUNCTIONS: [(&str, &str); 7] = [
    ("process-email-queue", "ProcessEmailQueueFunction"),
    ("handle-email", "HandleEmailFunction"),
    ("process-campaigns", "ProcessCampaignsFunction"),
    ("handle-campaign", "HandleCampaignFunction"),
    ("process-sms-drip", "ProcessSmsDripFunction"),
    ("handle-sms", "HandleSmsFunction"),
    ("symphony-api", "SymphonyApiFunction"),
];

/// A function's configured timeout (its own `Timeout`, else the template's global one).
pub fn function_timeout(template: &Value, logical_id: &str) -> std::time::Duration {
    let own = &template["Resources"][logical_id]["Properties"]["Timeout"];
    let global = &template["Globals"]["Function"]["Timeout"];
    std::time::Duration::from_secs(own.as_u64().or_else(|| global.as_u64()).unwrap_or(3))
}

pub fn load_template() -> Value {
    let path = project_root().join("template.yaml");
    let text = std::fs::read_to_string(&path).expect("cannot read template.yaml");
    serde_norway::from_str(&text).expect("template.yaml is not valid YAML")
}

/// The template's resources of one CloudFormation type: (logical id, properties).
pub fn resources_of_type<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    let mut found: Vec<(String, &Value)> = template["Resources"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .filter_map(|(id, resource)| Some((id.as_str()?.to_owned(), &resource["Properties"])))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

impl Stack {
    /// Creates every `AWS::DynamoDB::Table` and `AWS::SQS::Queue` of the template, dead-letter
    /// queues before the queues whose redrive policy names them.
    pub async fn provision(sdk: &SdkConfig, name: &str) -> Self {
        let mut stack = Self {
            name: name.to_owned(),
            template: load_template(),
            tables: HashMap::new(),
            queues: HashMap::new(),
        };
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        for (id, properties) in resources_of_type(&stack.template, "AWS::DynamoDB::Table") {
            let table_name = stack.resolve(&properties["TableName"]);
            create_table(&dynamo, &table_name, properties).await;
            stack.tables.insert(id, table_name);
        }
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let mut queues = resources_of_type(&stack.template, "AWS::SQS::Queue");
        queues.sort_by_key(|(_, properties)| !properties["RedrivePolicy"].is_null());
        for (id, properties) in queues {
            let queue = stack.create_queue(&sqs, properties).await;
            stack.queues.insert(id, queue);
        }
        stack
    }

    pub fn table(&self, logical_id: &str) -> &str {
        self.tables
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml has no table {logical_id}"))
    }

    pub fn queue(&self, logical_id: &str) -> &QueueRef {
        self.queues
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml has no queue {logical_id}"))
    }

    /// A function's environment variables, resolved as CloudFormation would resolve them.
    pub fn function_env(&self, logical_id: &str) -> HashMap<String, String> {
        let variables =
            &self.template["Resources"][logical_id]["Properties"]["Environment"]["Variables"];
        variables
            .as_mapping()
            .unwrap_or_else(|| panic!("template.yaml: {logical_id} has no environment"))
            .iter()
            .filter_map(|(name, value)| Some((name.as_str()?.to_owned(), self.resolve(value))))
            .collect()
    }

    /// Resolves the intrinsics the template uses: `!Sub` with `${AWS::StackName}`,
    /// `!Ref` of a table, a queue or a parameter, and `!GetAtt Queue.Arn`.
    pub fn resolve(&self, value: &Value) -> String {
        match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Tagged(tagged) if tagged.tag == "Sub" => {
                let text = tagged.value.as_str().unwrap_or_default();
                text.replace("${AWS::StackName}", &self.name)
            }
            Value::Tagged(tagged) if tagged.tag == "Ref" => {
                let target = tagged.value.as_str().unwrap_or_default();
                if target == "AWS::StackName" {
                    self.name.clone()
                } else if target == "AWS::Region" {
                    "us-east-1".to_owned()
                } else if let Some(table) = self.tables.get(target) {
                    table.clone()
                } else if let Some(queue) = self.queues.get(target) {
                    queue.url.clone()
                } else if !self.template["Parameters"][target].is_null() {
                    self.resolve(&self.template["Parameters"][target]["Default"])
                } else {
                    panic!("template.yaml: cannot resolve !Ref {target} locally")
                }
            }
            Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
                let target = tagged.value.as_str().unwrap_or_default();
                let queue = target
                    .strip_suffix(".Arn")
                    .and_then(|id| self.queues.get(id));
                queue.map(|q| q.arn.clone()).unwrap_or_else(|| {
                    panic!("template.yaml: cannot resolve !GetAtt {target} locally")
                })
            }
            other => panic!("template.yaml: cannot resolve {other:?} locally"),
        }
    }

    async fn create_queue(&self, sqs: &aws_sdk_sqs::Client, properties: &Value) -> QueueRef {
        let name = self.resolve(&properties["QueueName"]);
        let mut request = sqs.create_queue().queue_name(&name);
        for (property, attribute) in [
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
            ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
            ("DelaySeconds", QueueAttributeName::DelaySeconds),
        ] {
            if !properties[property].is_null() {
                request = request.attributes(attribute, self.resolve(&properties[property]));
            }
        }
        let redrive = &properties["RedrivePolicy"];
        if !redrive.is_null() {
            let policy = serde_json::json!({
                "deadLetterTargetArn": self.resolve(&redrive["deadLetterTargetArn"]),
                "maxReceiveCount": self.resolve(&redrive["maxReceiveCount"]).parse::<u32>().expect("maxReceiveCount is a number"),
            });
            request = request.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot create queue {name}: {e:?}"))
            .queue_url
            .expect("CreateQueue returned no URL");
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("cannot read the queue's ARN");
        let arn = attributes
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .expect("the queue has no ARN");
        QueueRef { url, arn }
    }
}

fn key_schema(value: &Value) -> Vec<KeySchemaElement> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|key| {
            KeySchemaElement::builder()
                .attribute_name(key["AttributeName"].as_str().unwrap_or_default())
                .key_type(KeyType::from(key["KeyType"].as_str().unwrap_or_default()))
                .build()
                .expect("a key schema element needs a name and a type")
        })
        .collect()
}

async fn create_table(dynamo: &aws_sdk_dynamodb::Client, name: &str, properties: &Value) {
    let mut request = dynamo
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&properties["KeySchema"])));
    for attribute in properties["AttributeDefinitions"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute["AttributeName"].as_str().unwrap_or_default())
                .attribute_type(ScalarAttributeType::from(
                    attribute["AttributeType"].as_str().unwrap_or_default(),
                ))
                .build()
                .expect("an attribute definition needs a name and a type"),
        );
    }
    for index in properties["GlobalSecondaryIndexes"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index["IndexName"].as_str().unwrap_or_default())
                .set_key_schema(Some(key_schema(&index["KeySchema"])))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            index["Projection"]["ProjectionType"]
                                .as_str()
                                .unwrap_or("ALL"),
                        ))
                        .build(),
                )
                .build()
                .expect("an index needs a name and a key schema"),
        );
    }
    match request.send().await {
        Ok(_) => {}
        // Each world has its own moto server, so an existing table is this request's own:
        // the SDK retried a create whose answer came too late (moto under load).
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) => {}
        Err(e) => panic!("cannot create table {name}: {e:?}"),
    }
}
